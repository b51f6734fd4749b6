"""What both streaming audio modes share: one continuous audio *segment* on a sensor-time grid.

Arriving audio (``(S,)`` samples at ``stamp`` s) is appended to a continuous segment; a gap or
jump in time of more than ``gap_tolerance_s``, another sample rate, NaN/inf samples or
:meth:`AudioStream.reset` start a new one (counted in ``stats["audio_reset"]``). The segment's
10 ms frame grid is anchored to sensor time, not to the segment: a segment starts at the first
sample at or after a multiple of 10 ms (:func:`~synctva_ros.windowing.buffers.first_sample_at`),
and the windower starts window audio at such a multiple (``windowing.audio_grid_s``), so windows
cut from continuous audio line up with the frames computed while streaming.

A mode (:class:`~synctva_ros.streaming.audio_exact.ExactAudio`,
:class:`~synctva_ros.streaming.audio_context.ContextAudio`) subclasses :class:`AudioStream` and
fills in four hooks: what to do with newly appended samples (:meth:`AudioStream._consume`), how
to forget frames (:meth:`AudioStream._drop_frames`, :meth:`AudioStream._end_segment`) and how to
serve a closed window (:meth:`AudioStream._serve`). Frames are pooled into nodes by the batch
extractor's own code (:meth:`~synctva_ros.features.audio.OpenSmileAudio.nodes`), so node count,
node times and functionals are those of the batch run.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from typing import Any

import numpy as np

from synctva_ros.core.batch import ModalityFeatures
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.audio import OpenSmileAudio, as_float_mono, lld_frames
from synctva_ros.windowing.buffers import first_sample_at, grid_ceil

__all__ = ["AudioStream", "LEFT_CONTEXT_S", "RIGHT_CONTEXT_S", "drop_below"]

log = logging.getLogger(__name__)

#: Left context (seconds) that makes openSMILE eGeMAPSv02 LLD frames equal to a whole-signal run
#: (0.5 s suffices for all LLDs except jitter/shimmer, whose ``sma3nz`` state runs through a whole
#: voiced stretch; 1.0 s covers voiced stretches up to about 1 s).
LEFT_CONTEXT_S = 1.0
#: Right context (seconds) after a frame's start that makes it final (measured 0.1 s; margin added).
RIGHT_CONTEXT_S = 0.15


def drop_below(frames: dict[int, Any], oldest: int) -> None:
    """Delete keys ``< oldest`` from a dict filled in (mostly) increasing key order, from its front.

    O(deleted) per call instead of a scan of every key per audio chunk; a key inserted out of order
    (an old run's last frames after a hand-over) is dropped once the keys before it are.

    Args:
        frames: ``{frame index: value}``, modified in place.
        oldest: first frame index kept.
    """
    while frames:
        k = next(iter(frames))
        if k >= oldest:
            return
        del frames[k]


class AudioStream:
    """One streaming audio mode: the current segment's audio and the LLD frames computed from it.

    Args:
        ext: the batch audio extractor (its feature set, sample rate and pooling are used; it also
            serves every window the stream cannot, ``"batch:<reason>"``); its ``level`` must have
            low-level descriptors (not ``"functionals"``).
        stats: the cache's counters, incremented in place (``audio_reset``, mode-specific ones).
        buffer_s: seconds of frames kept.
        block_s: seconds of new audio per openSMILE call (exact mode; one block of margin in the kept audio).
        left_context_s: seconds of audio before each block (exact) or before a resumed or handed-over run
            (context); rounded to the 10 ms hop.
        gap_tolerance_s: an audio chunk whose stamp differs from the expected continuation by more than
            this starts a new segment, seconds.

    Shapes:
        :meth:`add` ``samples (S,)``; :meth:`features` -> ``x (N_a, F_a)``, ``t (N_a,)`` as ``ext(window)``.

    Subclasses create what :meth:`_end_segment` uses before calling this ``__init__``.
    """

    #: ``audio_mode`` name (``features.streaming_audio``).
    mode = ""

    def __init__(self, ext: OpenSmileAudio, stats: Counter[str], *, buffer_s: float, block_s: float,
                 left_context_s: float, gap_tolerance_s: float) -> None:
        import opensmile  # deferred: optional dependency, loads openSMILE's native library

        self.ext = ext
        self.stats = stats
        self.buffer_s = float(buffer_s)
        self.gap_tolerance_s = float(gap_tolerance_s)
        # Own Smile instance: never shares openSMILE state with the batch extractor's thread.
        self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet[ext.feature_set],
                                      feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        self.sr = int(ext.sample_rate)
        self.hop = int(round(0.01 * self.sr))
        self.left = int(round(left_context_s * self.sr / self.hop)) * self.hop
        self.right = int(math.ceil(RIGHT_CONTEXT_S * self.sr))
        self.block = max(1, int(round(block_s * self.sr / self.hop))) * self.hop
        # audio kept: the left context + block + right context of the next block (exact) or the left
        # context a resumed / handed-over run is primed with (context), one block of margin
        self._keep = self.left + 2 * self.block + self.right
        self._lock = threading.RLock()  # segment state: sensor callbacks / worker vs the processing thread
        self._gen = 0  # the cache's generation; chunks of an older one are ignored
        with self._lock:
            self._restart()

    # ------------------------------------------------------------------ hooks
    def _consume(self, x: np.ndarray, stamp: float) -> None:
        """Work on samples ``x`` just appended to the segment (``stamp``: the chunk's). Caller holds ``_lock``."""
        raise NotImplementedError

    def _drop_frames(self, oldest: int) -> None:
        """Forget frames with index ``< oldest``. Caller holds ``_lock``."""
        raise NotImplementedError

    def _end_segment(self) -> None:
        """Forget the segment's frames (and stop its work). Caller holds ``_lock``."""
        raise NotImplementedError

    def _serve(self, window: UtteranceWindow, x: np.ndarray,
               timeout_s: float) -> tuple[ModalityFeatures | None, str]:
        """Features of a window whose audio ``x`` (float32, at :attr:`sr`) passed the common checks."""
        raise NotImplementedError

    def frame_count(self) -> int:
        """LLD frames cached now (diagnostics)."""
        raise NotImplementedError

    def wait_ready(self, window: UtteranceWindow, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s`` s) until the frames ``window`` needs are computed; False: timed out.

        A mode whose frames are computed in the caller's (or the cache's worker) thread has nothing to wait for.
        """
        return True

    def close(self) -> None:
        """Wait for the work a :meth:`reset` left running (a few ms of openSMILE flushing, context mode)."""

    # ------------------------------------------------------------------ segment
    def _restart(self) -> None:
        """Start a new (empty) segment. Caller holds ``_lock``."""
        self._origin: float | None = None  # sensor time of segment sample 0
        self._buf = np.zeros(0, np.float32)  # samples [self._buf_at, self._buf_at + len)
        self._buf_at = 0
        self._total = 0  # samples received in this segment
        self._end_segment()

    def reset(self, gen: int) -> None:
        """Forget the segment; chunks of a generation other than ``gen`` are ignored from now on."""
        with self._lock:
            self._gen = gen
            self._restart()

    def add(self, stamp: float, samples: np.ndarray, sample_rate: int, gen: int) -> None:
        """Append an audio chunk whose first sample is at ``stamp`` s to the segment and work on it.

        Args:
            stamp: sensor time of the first sample, seconds.
            samples: ``(S,)`` float in [-1, 1] or int16.
            sample_rate: Hz; another rate than the extractor's starts a new segment (as do NaN/inf
                samples and a stamp off the expected continuation by more than ``gap_tolerance_s``).
            gen: the cache's generation when the chunk arrived (ignored unless it is the current one).
        """
        x = as_float_mono(samples)
        if x.size == 0:
            return
        with self._lock:
            if gen != self._gen:  # reset() while this chunk waited
                return
            if int(sample_rate) != self.sr or not np.isfinite(x).all():
                if self._origin is not None:
                    self.stats["audio_reset"] += 1
                log.debug("audio chunk at %.3f s not usable for streaming (rate %s, finite %s)", stamp,
                          sample_rate, bool(np.isfinite(x).all()))
                self._restart()
                return
            if self._origin is not None:
                expected = self._origin + self._total / self.sr
                if abs(stamp - expected) > self.gap_tolerance_s:
                    self.stats["audio_reset"] += 1
                    log.debug("audio gap/jump at %.3f s (expected %.3f s): new streaming segment", stamp, expected)
                    self._restart()
            if self._origin is None:
                # anchor the frame grid to sensor time: start at the first sample on a multiple of the hop
                skip = first_sample_at(grid_ceil(stamp, self.hop / self.sr), stamp, self.sr)
                if skip >= x.size:
                    return  # no grid point in this chunk; the next chunk starts the segment
                x = x[max(skip, 0):]
                self._origin = stamp + max(skip, 0) / self.sr
            self._buf = np.concatenate([self._buf, x])
            self._total += x.size
            self._consume(x, stamp)
            self._trim()

    def _trim(self) -> None:
        """Keep the audio the next block or run hand-over reads, and ``buffer_s`` seconds of frames."""
        excess = self._buf.size - self._keep
        if excess > 0:
            excess = (excess // self.hop) * self.hop
            self._buf = self._buf[excess:]
            self._buf_at += excess
        self._drop_frames((self._total - int(self.buffer_s * self.sr) - self.left) // self.hop)

    # ------------------------------------------------------------------ close
    def features(self, window: UtteranceWindow, timeout_s: float) -> tuple[ModalityFeatures | None, str]:
        """Audio nodes of a closed window, from the stream's frames where it covers the window.

        Args:
            window: its ``audio`` ``(S,)`` at ``sample_rate`` Hz starting at ``audio_start`` s.
            timeout_s: longest wait for frames still being computed, seconds.

        Returns:
            ``(features, how)``: the nodes (``None`` only where the batch extractor gives none) and
            where they came from (the mode's name, possibly ``":shifted"``, or ``"batch:<reason>"``).
        """
        x = np.asarray(window.audio)
        if x.size == 0 or x.ndim != 1:
            return self.ext(window), "batch:bad_audio"
        x = as_float_mono(x)
        if not np.isfinite(x).all():
            return self.ext(window), "batch:bad_audio"
        if int(window.sample_rate) != self.sr:
            return self.ext(window), "batch:sample_rate"
        return self._serve(window, x, timeout_s)

    def _lld(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LLD frames ``(T, F)`` of ``x`` by this stream's own Smile, and their durations ``(T,)`` in seconds."""
        frames, starts, ends = lld_frames(self._smile, x, self.sr)
        return frames, ends - starts

    def _pool(self, window: UtteranceWindow, x: np.ndarray, frames: np.ndarray, durs: np.ndarray) -> ModalityFeatures:
        """LLD frames ``(T, F)`` on the 10 ms grid from the window's first sample -> audio nodes, by the
        batch extractor's own pooling (:meth:`~synctva_ros.features.audio.OpenSmileAudio.nodes`)."""
        ext = self.ext
        centres = np.arange(frames.shape[0]) * (self.hop / self.sr) + durs / 2.0
        dur = window.end - window.start
        win = dur if dur > 0 else x.size / self.sr
        return ext.nodes(frames, centres, window.audio_start - window.start, win, ext.functionals(x))
