"""Speech audio of a dataset utterance, rendered by the rules the bag writer follows.

MELD and IEMOCAP audio cannot be had on these machines, so an utterance's audio is its
transcript spoken by espeak-ng (:func:`synctva_ros.datasets.speech.render_speech`). The bag
writer (:func:`synctva_ros.bags.make_bag.make_bag`) and the training feature cache
(:mod:`synctva_ros.datasets.cache`) share these rules, so a checkpoint hears in training
what the node hears from a bag:

* the dataset duration (``EndTime - StartTime``) is the target length when it is plausible,
  :data:`MIN_UTT_S` .. :data:`MAX_UTT_S` seconds (:func:`plausible_duration`);
* text that renders as silence becomes :data:`MIN_UTT_S` seconds of zeros;
* samples travel as S16LE PCM (:func:`to_s16le`: ``round(x * 32767)``, decoded ``/ 32768``).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import math
import shutil
import subprocess
from typing import Any

import numpy as np

from synctva_ros.datasets import speech
from synctva_ros.datasets.utterance import Utterance

__all__ = ["MIN_UTT_S", "MAX_UTT_S", "plausible_duration", "to_s16le", "render_utterance", "speech_identity"]

#: Shortest plausible dataset utterance, and the length of a silent one (seconds).
MIN_UTT_S = 0.3
#: Longest plausible dataset utterance (seconds); a longer ``EndTime - StartTime`` is taken as bad timing.
MAX_UTT_S = 30.0


def plausible_duration(duration_s: float | None, min_utt_s: float = MIN_UTT_S,
                       max_utt_s: float = MAX_UTT_S) -> float | None:
    """``duration_s`` when it is finite and in ``[min_utt_s, max_utt_s]`` seconds, else ``None``."""
    if duration_s is None or not math.isfinite(duration_s) or not min_utt_s <= duration_s <= max_utt_s:
        return None
    return duration_s


def to_s16le(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (clipped) -> int16 PCM: ``round(x * 32767)``.

    Shapes: ``(S,)`` float -> ``(S,)`` int16.
    """
    return np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


def render_utterance(utt: Utterance, sample_rate: int = 16000) -> tuple[np.ndarray, int]:
    """Speech audio of one utterance, rendered exactly as :func:`synctva_ros.bags.make_bag.make_bag` does.

    That is :func:`~synctva_ros.datasets.speech.render_speech` with the utterance's speaker and
    its :func:`plausible_duration`; text that renders as silence becomes :data:`MIN_UTT_S` of
    zeros; and the samples go through the bag's S16LE quantisation (:func:`to_s16le`, decoded
    ``/ 32768``).

    Args:
        utt: the utterance (text, speaker, ``start_s``/``end_s`` in seconds).
        sample_rate: output rate in Hz.

    Returns:
        ``(samples (S,) float32 in [-1, 1], sample_rate Hz)``.

    Raises:
        RuntimeError: espeak-ng is missing or fails (EspeakNotFoundError is a RuntimeError).
    """
    dur = plausible_duration(utt.duration_s)
    x = np.asarray(speech.render_speech(utt.text, utt.speaker, dur, sample_rate), np.float32)
    if x.size == 0:
        x = np.zeros(int(MIN_UTT_S * sample_rate), np.float32)
    x = to_s16le(x).astype(np.float32) / 32768.0
    return x, int(sample_rate)


def _code_hash(source: str) -> str:
    """sha256 of Python source with comments, docstrings and formatting removed (``ast.unparse``)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()


def speech_identity(sample_rate: int = 16000) -> dict[str, Any]:
    """Identity of the speech renderer, part of the feature cache's key.

    Args:
        sample_rate: rate of the rendered audio (Hz).

    Returns:
        ``{"source_sha256"`` (of :mod:`~synctva_ros.datasets.speech`'s code, docstrings and
        comments ignored), ``"espeak"`` (its ``--version`` line, when installed), ``"sample_rate"``,
        ``"bag_rules"`` (:data:`MIN_UTT_S`, :data:`MAX_UTT_S`, PCM format)``}``.
    """
    ident: dict[str, Any] = {"source_sha256": _code_hash(inspect.getsource(speech))}
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe:
        ver = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        ident["espeak"] = ver.split(" Data at")[0]
    ident["sample_rate"] = int(sample_rate)
    ident["bag_rules"] = {"min_max_utt_s": [MIN_UTT_S, MAX_UTT_S], "pcm": "S16LE", "adapter": 2}
    return ident
