"""Bounded per-modality time buffers in sensor time (seconds).

Two buffers back the :class:`~synctva_ros.windowing.windower.UtteranceWindower`:

* :class:`FrameBuffer` keeps camera frames sorted by stamp, at most
  ``max_frames`` of them and none older than ``buffer_s`` before the newest.
* :class:`AudioBuffer` keeps mono float32 chunks ``(start_time, samples)`` sorted
  by start, none ending more than ``buffer_s`` before the newest chunk's end.

Both insert out-of-order items in order (``bisect``) and refuse an item whose
stamp equals a buffered one (a duplicate). Range queries are inclusive
``[start, end]``. Nothing here logs or raises on data; the windower does the
counting and logging.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from synctva_ros.core.window import TimedFrame

__all__ = ["FrameBuffer", "AudioBuffer", "AudioChunk", "AudioRange", "SAMPLE_EPS", "grid_floor", "grid_ceil",
           "first_sample_at"]

#: Two stamps closer than this (seconds) are the same stamp (duplicates).
STAMP_EPS = 1e-9
#: Tolerance in samples when a time is turned into a sample index: float64 sensor times near
#: 1.8e9 s (epoch) carry ~2.4e-7 s of rounding, 0.004 samples at 16 kHz.
SAMPLE_EPS = 0.01


def grid_floor(t: float, step: float) -> float:
    """Largest multiple of ``step`` seconds that is ``<= t`` (``t`` when ``step <= 0``)."""
    if step <= 0:
        return float(t)
    return math.floor(t / step + 1e-9) * step


def grid_ceil(t: float, step: float) -> float:
    """Smallest multiple of ``step`` seconds that is ``>= t`` (``t`` when ``step <= 0``)."""
    if step <= 0:
        return float(t)
    return math.ceil(t / step - 1e-9) * step


def first_sample_at(t: float, chunk_start: float, sample_rate: int) -> int:
    """Index of the first sample at or after time ``t`` in a run of samples starting at ``chunk_start``.

    ``chunk_start + i / sample_rate >= t`` up to :data:`SAMPLE_EPS` samples (may be negative
    when ``t < chunk_start``). The window audio (:meth:`AudioBuffer.query`) and the streaming
    feature cache (:mod:`synctva_ros.streaming`) both use it, so they pick the same sample.
    """
    return int(math.ceil((t - chunk_start) * sample_rate - SAMPLE_EPS))


class FrameBuffer:
    """Camera frames sorted by stamp, bounded in time and count.

    Args:
        buffer_s: keep frames with ``stamp >= newest - buffer_s`` (seconds, > 0).
        max_frames: hard cap on the number of frames (>= 1); the oldest go first.

    Raises:
        ValueError: non-positive bounds.
    """

    def __init__(self, buffer_s: float, max_frames: int) -> None:
        if not buffer_s > 0 or max_frames < 1:
            raise ValueError(f"buffer_s must be > 0 and max_frames >= 1, got {buffer_s}, {max_frames}")
        self.buffer_s = float(buffer_s)
        self.max_frames = int(max_frames)
        self._stamps: list[float] = []
        self._frames: list[TimedFrame] = []
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def newest(self) -> float | None:
        """Stamp of the newest frame (seconds) or ``None`` when empty."""
        return self._stamps[-1] if self._stamps else None

    @property
    def oldest(self) -> float | None:
        """Stamp of the oldest frame (seconds) or ``None`` when empty."""
        return self._stamps[0] if self._stamps else None

    def horizon(self) -> float:
        """Oldest stamp an insert can still have (``newest - buffer_s``; ``-inf`` when empty)."""
        return self._stamps[-1] - self.buffer_s if self._stamps else -math.inf

    def insert(self, frame: TimedFrame) -> str:
        """Insert a frame in stamp order.

        Returns:
            ``"appended"``, ``"inserted"`` (out of order, placed in order),
            ``"duplicate"`` (same stamp already buffered; not stored) or
            ``"too_old"`` (older than the horizon; not stored). Evictions that
            the insert causes are added to :attr:`evicted`.
        """
        t = frame.stamp
        if t < self.horizon():
            return "too_old"
        i = bisect.bisect_left(self._stamps, t - STAMP_EPS)
        if i < len(self._stamps) and abs(self._stamps[i] - t) <= STAMP_EPS:
            return "duplicate"
        result = "appended" if i == len(self._stamps) else "inserted"
        self._stamps.insert(i, t)
        self._frames.insert(i, frame)
        self._evict()
        return result

    def _evict(self) -> None:
        cut = bisect.bisect_left(self._stamps, self.horizon())
        cut = max(cut, len(self._stamps) - self.max_frames)
        if cut > 0:
            del self._stamps[:cut]
            del self._frames[:cut]
            self.evicted += cut

    def query(self, start: float, end: float) -> list[TimedFrame]:
        """Frames with ``start <= stamp <= end``, ascending (a new list)."""
        i = bisect.bisect_left(self._stamps, start)
        j = bisect.bisect_right(self._stamps, end)
        return self._frames[i:j]

    def empty_like(self) -> FrameBuffer:
        """A new, empty buffer with the same bounds."""
        return FrameBuffer(self.buffer_s, self.max_frames)

    def clear(self) -> None:
        """Forget every frame."""
        self._stamps.clear()
        self._frames.clear()


@dataclass(frozen=True)
class AudioChunk:
    """A contiguous run of mono samples: ``samples[i]`` is at ``start + i / sample_rate`` seconds."""

    start: float
    samples: np.ndarray

    def end(self, sample_rate: int) -> float:
        """Time just after the last sample (seconds)."""
        return self.start + self.samples.size / sample_rate


@dataclass(frozen=True)
class AudioRange:
    """Result of :meth:`AudioBuffer.query`.

    Attributes:
        samples: ``(S,)`` float32 contiguous samples.
        start: sensor time of ``samples[0]`` (seconds; the query start when empty).
        gaps: number of gaps between chunks inside the range (zero-filled).
        gap_samples: number of zero-filled samples.
    """

    samples: np.ndarray
    start: float
    gaps: int
    gap_samples: int


class AudioBuffer:
    """Mono audio chunks sorted by start time, bounded to ``buffer_s`` seconds.

    Args:
        buffer_s: drop chunks that end more than this before the newest chunk's end (seconds, > 0).
        sample_rate: samples per second of every chunk (Hz, > 0).

    Raises:
        ValueError: non-positive arguments.
    """

    def __init__(self, buffer_s: float, sample_rate: int) -> None:
        if not buffer_s > 0 or sample_rate <= 0:
            raise ValueError(f"buffer_s and sample_rate must be > 0, got {buffer_s}, {sample_rate}")
        self.buffer_s = float(buffer_s)
        self.sample_rate = int(sample_rate)
        self._starts: list[float] = []
        self._chunks: list[AudioChunk] = []
        self._newest_end = -math.inf
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def total_samples(self) -> int:
        """Samples held over all chunks."""
        return sum(c.samples.size for c in self._chunks)

    @property
    def newest_end(self) -> float | None:
        """End time of the latest-ending chunk (seconds) or ``None`` when empty."""
        return self._newest_end if self._chunks else None

    def horizon(self) -> float:
        """Chunks ending before this are evicted (``newest_end - buffer_s``; ``-inf`` when empty)."""
        return self._newest_end - self.buffer_s if self._chunks else -math.inf

    def span(self) -> float:
        """Seconds from the oldest chunk's start to the newest end (0 when empty)."""
        return self._newest_end - self._chunks[0].start if self._chunks else 0.0

    def insert(self, start: float, samples: np.ndarray) -> str:
        """Insert a chunk whose first sample is at ``start`` seconds.

        Returns:
            ``"appended"``, ``"inserted"`` (out of order), ``"duplicate"``
            (a chunk with the same start within half a sample exists; not stored),
            ``"too_old"`` (ends before the horizon; not stored) or ``"empty"``.
        """
        x = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return "empty"
        chunk = AudioChunk(float(start), x)
        end = chunk.end(self.sample_rate)
        if end < self.horizon():
            return "too_old"
        half = 0.5 / self.sample_rate
        i = bisect.bisect_left(self._starts, chunk.start - half)
        if i < len(self._starts) and abs(self._starts[i] - chunk.start) < half:
            return "duplicate"
        result = "appended" if i == len(self._starts) else "inserted"
        self._starts.insert(i, chunk.start)
        self._chunks.insert(i, chunk)
        self._newest_end = max(self._newest_end, end)
        self._evict()
        return result

    def _evict(self) -> None:
        horizon = self.horizon()
        # only chunks starting before the horizon can end before it: O(evicted), not O(buffered), per insert
        k = bisect.bisect_left(self._starts, horizon)
        keep = [i for i in range(k) if self._chunks[i].end(self.sample_rate) >= horizon]
        if len(keep) < k:
            self.evicted += k - len(keep)
            self._starts[:k] = [self._starts[i] for i in keep]
            self._chunks[:k] = [self._chunks[i] for i in keep]
        # a chunk longer than buffer_s is trimmed to its last buffer_s seconds
        if self._chunks and self._chunks[0].start < horizon:
            c = self._chunks[0]
            drop = int(math.floor((horizon - c.start) * self.sample_rate))
            if drop > 0:
                self._chunks[0] = AudioChunk(c.start + drop / self.sample_rate, c.samples[drop:])
                self._starts[0] = self._chunks[0].start

    def query(self, start: float, end: float) -> AudioRange:
        """Samples whose times lie in ``[start, end]``.

        The output runs on the sample grid of the first chunk that overlaps the
        range; later chunks are placed at their own start rounded to that grid.
        Uncovered samples between chunks are zeros (counted in ``gaps`` and
        ``gap_samples``); where chunks overlap, the later-starting chunk wins
        (deterministic for a given set of chunks).

        Returns:
            :class:`AudioRange` (empty samples when no chunk overlaps).
        """
        sr = self.sample_rate
        eps = SAMPLE_EPS
        hits = [c for c in self._chunks if c.end(sr) > start and c.start <= end]
        if not hits or end < start:
            return AudioRange(np.zeros(0, np.float32), float(start), 0, 0)
        first = hits[0]
        i0 = max(0, first_sample_at(start, first.start, sr))
        t0 = first.start + i0 / sr
        last_time = min(end, max(c.end(sr) - 1.0 / sr for c in hits))
        n = int(math.floor((last_time - t0) * sr + eps)) + 1
        if n <= 0:
            return AudioRange(np.zeros(0, np.float32), float(start), 0, 0)
        out = np.zeros(n, np.float32)
        covered = np.zeros(n, bool)
        for c in hits:
            off = int(round((c.start - t0) * sr))
            a = max(0, -off)
            b = min(c.samples.size, n - off)
            if b > a:
                out[off + a: off + b] = c.samples[a:b]
                covered[off + a: off + b] = True
        holes = ~covered
        gap_samples = int(holes.sum())
        gaps = int(np.count_nonzero(np.diff(holes.astype(np.int8)) == 1) + (1 if holes[0] else 0))
        return AudioRange(out, float(t0), gaps, gap_samples)

    def empty_like(self) -> AudioBuffer:
        """A new, empty buffer with the same bound and rate."""
        return AudioBuffer(self.buffer_s, self.sample_rate)

    def clear(self) -> None:
        """Forget every chunk."""
        self._starts.clear()
        self._chunks.clear()
        self._newest_end = -math.inf
