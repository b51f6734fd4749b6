"""Real synthetic speech, rendered with the espeak-ng formant synthesiser.

The one speech renderer of the project: the bag writer
(:func:`synctva_ros.bags.make_bag.make_bag`) and the training feature cache
(:func:`synctva_ros.datasets.rendering.render_utterance`) both call
:func:`render_speech`, so training audio matches the audio in the bags. It lives
in ``datasets`` (below ``bags``) so the cache never imports the bag tools.

Source: espeak-ng (https://github.com/espeak-ng/espeak-ng), run as a
subprocess (``espeak-ng -w out.wav --stdin``); its 22.05 kHz output is
resampled to the requested rate with ``scipy.signal.resample_poly``. Each
speaker name maps (stably, by CRC-32) to an English voice variant and pitch, so
different speakers sound different; the speaking rate is chosen so the speech
fills a requested duration when espeak-ng's range (80..450 words per minute)
allows.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
import zlib
from pathlib import Path

import numpy as np

from synctva_ros.core.codecs import resample

__all__ = ["EspeakNotFoundError", "espeak_binary", "voice_for", "render_speech"]

#: espeak-ng voice variants used for speakers (English base voice).
VARIANTS: tuple[str, ...] = ("m1", "f2", "m3", "f3", "m2", "f1", "m4", "f4", "m5", "f5", "m6", "m7")
DEFAULT_WPM = 175
MIN_WPM, MAX_WPM = 80, 450


class EspeakNotFoundError(RuntimeError):
    """espeak-ng is not installed (``apt-get install espeak-ng``)."""


def espeak_binary() -> str:
    """Path of the espeak-ng executable.

    Raises:
        EspeakNotFoundError: neither ``espeak-ng`` nor ``espeak`` is on ``PATH``.
    """
    for name in ("espeak-ng", "espeak"):
        path = shutil.which(name)
        if path:
            return path
    raise EspeakNotFoundError("espeak-ng not found on PATH: install it (apt-get install espeak-ng) to render "
                              "speech for test bags")


def voice_for(speaker: str) -> tuple[str, int]:
    """``(voice, pitch)`` for a speaker name: e.g. ``("en+f2", 62)``; the same name always gets the same voice."""
    h = zlib.crc32(speaker.encode("utf-8"))
    return f"en+{VARIANTS[h % len(VARIANTS)]}", 35 + (h >> 8) % 40


def _render(text: str, voice: str, pitch: int, wpm: int) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        cmd = [espeak_binary(), "-v", voice, "-p", str(pitch), "-s", str(wpm), "-w", str(out), "--stdin"]
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=60)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
        with wave.open(str(out), "rb") as w:
            if w.getsampwidth() != 2:
                raise RuntimeError(f"espeak-ng wrote {8 * w.getsampwidth()}-bit audio, expected 16-bit")
            rate, ch = w.getframerate(), w.getnchannels()
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    return x, rate


def _trim(x: np.ndarray, rate: int, threshold: float = 1e-3, margin_s: float = 0.01) -> np.ndarray:
    idx = np.flatnonzero(np.abs(x) > threshold)
    if idx.size == 0:
        return x[:0]
    m = int(margin_s * rate)
    return x[max(0, idx[0] - m): idx[-1] + 1 + m]


def render_speech(text: str, speaker: str = "", duration_s: float | None = None,
                  sample_rate: int = 16000) -> np.ndarray:
    """Render ``text`` as speech.

    Args:
        text: UTF-8 text (passed on stdin, so it may start with ``-``).
        speaker: selects the voice (:func:`voice_for`).
        duration_s: wanted length in seconds; the rate is scaled to fit within
            80..450 wpm, so the result is only close to it when that suffices.
        sample_rate: output rate in Hz.

    Returns:
        ``(S,)`` float32 mono in [-1, 1], leading/trailing silence trimmed
        (empty for text espeak-ng renders as silence).

    Raises:
        EspeakNotFoundError: espeak-ng missing. RuntimeError: espeak-ng failed.
    """
    voice, pitch = voice_for(speaker)
    x, rate = _render(text, voice, pitch, DEFAULT_WPM)
    x = _trim(x, rate)
    if duration_s and duration_s > 0 and x.size:
        length = x.size / rate
        wpm = int(round(min(MAX_WPM, max(MIN_WPM, DEFAULT_WPM * length / duration_s))))
        if abs(wpm - DEFAULT_WPM) > 0.05 * DEFAULT_WPM:
            x, rate = _render(text, voice, pitch, wpm)
            x = _trim(x, rate)
    return np.clip(resample(x, rate, sample_rate), -1.0, 1.0).astype(np.float32)
