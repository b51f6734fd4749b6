"""Audio features: openSMILE low-level descriptors pooled into graph nodes (paper Sec. 3.1).

The paper extracts acoustic features with openSMILE. Here the low-level descriptors
(LLDs, one vector per 10 ms frame) of the configured feature set are pooled into at most
``max_nodes`` contiguous segments (mean over the frames of each segment); each segment is
one audio node whose time is the segment centre, normalised over the utterance window.
Optionally the utterance-level functionals are appended to every node
(``level="lld+functionals"``) or used alone as a single node (``level="functionals"``).

Feature sets (names of ``opensmile.FeatureSet`` in opensmile 2.6, all present):
``eGeMAPSv02`` (25 LLDs / 88 functionals), ``IS10`` (the INTERSPEECH 2010 paralinguistic
set, 38 LLDs / 1582 functionals, the set the IEMOCAP feature pickles of the literature
use), ``ComParE_2016`` (65 LLDs / 6373 functionals) and ``emobase`` (26 LLDs / 988).

Short and bad audio (documented policy):
- empty audio -> ``None`` (the modality is absent; counted in :attr:`OpenSmileAudio.skipped`);
- audio containing NaN/inf -> ``None`` plus a logged, counted warning;
- audio shorter than :data:`MIN_DURATION_S` (openSMILE needs about 60 ms for its first
  pitch frame and returns NaN below it) is zero-padded at the end to that length; the
  padded frames' times are clipped to the window end;
- LLD values that openSMILE itself reports as NaN are replaced by 0.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from typing import Any

import numpy as np

from synctva_ros.features.base import FeatureExtractor
from synctva_ros.core.batch import ModalityFeatures
from synctva_ros.core.codecs import resample

__all__ = ["OpenSmileAudio", "AUDIO_LEVELS", "MIN_DURATION_S", "as_float_mono", "lld_frames"]

log = logging.getLogger(__name__)

#: Accepted values of ``level``.
AUDIO_LEVELS = ("lld", "lld+functionals", "functionals")
#: Shortest audio fed to openSMILE; shorter non-empty audio is zero-padded (seconds).
MIN_DURATION_S = 0.1


def as_float_mono(audio: np.ndarray) -> np.ndarray:
    """``(S,)`` float32 view of mono audio; int16 is scaled by 1/32768.

    Raises:
        ValueError: not one-dimensional.
    """
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"audio must be mono (S,), got shape {x.shape}")
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    return x.astype(np.float32, copy=False)


def lld_frames(smile: Any, x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """openSMILE low-level descriptors of ``(S,)`` float32 audio (``opensmile.Smile.process_signal``).

    Returns:
        ``frames`` ``(T, F)`` float32 (openSMILE's NaN -> 0), ``starts`` and ``ends`` ``(T,)`` in seconds
        from the first sample.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        df = smile.process_signal(x, sample_rate)
    starts = df.index.get_level_values("start").total_seconds().to_numpy()
    ends = df.index.get_level_values("end").total_seconds().to_numpy()
    return np.nan_to_num(df.to_numpy(np.float32)), starts, ends


class OpenSmileAudio(FeatureExtractor):
    """openSMILE audio nodes.

    Args:
        feature_set: a name of ``opensmile.FeatureSet`` (``eGeMAPSv02``, ``IS10``, ``ComParE_2016``, ...).
        sample_rate: rate (Hz) audio is resampled to before openSMILE.
        max_nodes: most audio nodes (pooled LLD segments) per utterance.
        level: ``"lld"``, ``"lld+functionals"`` or ``"functionals"`` (see module docstring).

    Shapes:
        ``__call__``: window -> ``x`` ``(N, F)`` with ``N <= max_nodes`` (1 for ``"functionals"``),
        ``F`` = number of LLDs (+ number of functionals).

    Raises:
        ValueError: unknown feature set or level, ``max_nodes < 1``.
    """

    modality = "audio"

    def __init__(self, feature_set: str = "eGeMAPSv02", sample_rate: int = 16000, max_nodes: int = 32,
                 level: str = "lld") -> None:
        import opensmile  # deferred: 1-3 s to import (audinterface, audformat); only the audio branch needs it

        if feature_set not in opensmile.FeatureSet.__members__:
            raise ValueError(f"unknown openSMILE feature set '{feature_set}' "
                             f"(known: {', '.join(opensmile.FeatureSet.__members__)})")
        if level not in AUDIO_LEVELS:
            raise ValueError(f"audio level must be one of {AUDIO_LEVELS}, got '{level}'")
        if max_nodes < 1:
            raise ValueError(f"max_nodes must be >= 1, got {max_nodes}")
        self.feature_set = feature_set
        self.sample_rate = int(sample_rate)
        self.max_nodes = int(max_nodes)
        self.level = level
        self.opensmile_version = opensmile.__version__
        fs = opensmile.FeatureSet[feature_set]
        self._lld = None
        self._func = None
        if level != "functionals":
            self._lld = opensmile.Smile(feature_set=fs, feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        if level != "lld":
            self._func = opensmile.Smile(feature_set=fs, feature_level=opensmile.FeatureLevel.Functionals)
        self.lld_dim = len(self._lld.feature_names) if self._lld is not None else 0
        self.func_dim = len(self._func.feature_names) if self._func is not None else 0
        self.dim = self.lld_dim + self.func_dim
        #: Counts of windows that gave no features, by reason ("empty", "nonfinite").
        self.skipped: Counter[str] = Counter()
        #: Count of windows zero-padded to :data:`MIN_DURATION_S`.
        self.padded = 0

    def identity(self) -> dict[str, Any]:
        """``{"kind", "opensmile", "feature_set", "level", "sample_rate", "max_nodes", "dim", "pooling"}``."""
        return {
            "kind": "opensmile",
            "opensmile": self.opensmile_version,
            "feature_set": self.feature_set,
            "level": self.level,
            "sample_rate": self.sample_rate,
            "max_nodes": self.max_nodes,
            "dim": self.dim,
            "pooling": "segment_mean",
            "min_duration_s": MIN_DURATION_S,
        }

    # ------------------------------------------------------------------ core
    def extract(self, audio: np.ndarray, sample_rate: int, offset_s: float = 0.0,
                duration_s: float | None = None) -> ModalityFeatures | None:
        """Nodes of raw audio.

        Args:
            audio: ``(S,)`` float mono samples in [-1, 1] (int16 is scaled by 1/32768).
            sample_rate: rate of ``audio`` in Hz.
            offset_s: seconds from the window start to ``audio[0]``.
            duration_s: window length in seconds used to normalise node times (default: the
                audio's own length).

        Returns:
            :class:`ModalityFeatures` or ``None`` for empty / non-finite audio.
        """
        x = as_float_mono(audio)
        if x.size == 0:
            self.skipped["empty"] += 1
            log.debug("empty audio: audio modality absent")
            return None
        if not np.isfinite(x).all():
            self.skipped["nonfinite"] += 1
            log.warning("audio with NaN/inf samples skipped (%d so far)", self.skipped["nonfinite"])
            return None
        x = resample(x, int(sample_rate), self.sample_rate)
        real_s = x.size / self.sample_rate
        win = float(duration_s) if duration_s and duration_s > 0 else real_s
        need = int(math.ceil(MIN_DURATION_S * self.sample_rate))
        if x.size < need:
            self.padded += 1
            x = np.concatenate([x, np.zeros(need - x.size, np.float32)])
        func = self.functionals(x)
        if self._lld is None:
            return ModalityFeatures(func[None, :].astype(np.float32),
                                    np.array([min(max((offset_s + real_s / 2) / win, 0.0), 1.0)], np.float32))
        frames, starts, ends = lld_frames(self._lld, x, self.sample_rate)
        return self.nodes(frames, (starts + ends) / 2.0, offset_s, win, func)

    def functionals(self, x: np.ndarray) -> np.ndarray | None:
        """Utterance-level functionals ``(F_f,)`` float32 of ``(S,)`` float32 audio at :attr:`sample_rate`
        (NaN -> 0), or ``None`` when ``level`` has none (``"lld"``)."""
        if self._func is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return np.nan_to_num(self._func.process_signal(x, self.sample_rate).to_numpy(np.float32)[0])

    def nodes(self, frames: np.ndarray, centres_s: np.ndarray, offset_s: float, window_s: float,
              func: np.ndarray | None = None) -> ModalityFeatures:
        """Pool LLD frames into audio nodes (the module docstring's rule); shared with the streaming cache.

        Args:
            frames: ``(T, F_lld)`` LLD frames; centres_s: ``(T,)`` frame centres in seconds from the
                first sample; offset_s: seconds from the window start to the first sample;
            window_s: window length in seconds (node times are normalised by it);
            func: ``(F_f,)`` functionals appended to every node, or ``None``.

        Returns:
            ``x`` ``(N, F_lld [+ F_f])`` float32 with ``N = min(max_nodes, T)`` (``np.array_split`` of the
            frames, mean per segment) and ``t`` ``(N,)`` segment-centre times in [0, 1].
        """
        n = min(self.max_nodes, frames.shape[0])
        groups = np.array_split(np.arange(frames.shape[0]), n)
        xs = np.stack([frames[g].mean(0) for g in groups]).astype(np.float32)
        ts = np.array([centres_s[g].mean() for g in groups], dtype=np.float64)
        ts = np.clip((offset_s + ts) / window_s, 0.0, 1.0).astype(np.float32)
        if func is not None:
            xs = np.concatenate([xs, np.repeat(func[None, :], xs.shape[0], 0)], axis=1)
        return ModalityFeatures(xs, ts)

    def __call__(self, window: Any) -> ModalityFeatures | None:
        """Audio nodes of an :class:`~synctva_ros.core.window.UtteranceWindow`.

        Node times are relative to ``[window.start, window.end]`` (the audio may start at
        ``window.audio_start`` != ``window.start``).
        """
        dur = window.end - window.start
        return self.extract(window.audio, window.sample_rate, offset_s=window.audio_start - window.start,
                            duration_s=dur if dur > 0 else None)
