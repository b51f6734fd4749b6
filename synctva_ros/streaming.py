"""Incremental audio and visual features while an utterance is still going.

When the final transcript closes a window, the batch path runs openSMILE over the whole
window audio and the visual encoder over every sampled frame. Both inputs arrive long
before that, so :class:`StreamingFeatureCache` works on them as they come:

**Audio** (openSMILE low-level descriptors, LLDs). Arriving audio is appended to a
continuous *segment* (a gap, a jump in time, another sample rate or :meth:`reset` starts a
new one). Two modes (``audio_mode``, ROS parameter ``features.streaming_audio``):

*context* (default in the node). One live openSMILE run over the segment
(:class:`~synctva_ros.features.opensmile_live.LiveOpenSmile`): every frame is computed once,
as the audio arrives (about 0.04 s of CPU per second of audio), and is final about 0.1 s
later, well within ``windowing.late_s``; at window close the window's frames are only looked
up and pooled (about 1-3 ms here, against about 60 ms for openSMILE over a 3 s window). The
live frames equal a whole-stream run; they differ from the batch extractor's (which sees only
the window's audio) where the batch run lacks context: the window's first frames (no audio
before them; jitter/shimmer until the first unvoiced frame) and last ~0.1 s. Measured: per
node, median relative difference 0, 95th percentile < 1e-4, worst 0.1-0.4 (a first or last
node); `synctva evaluate --stream` measures what that changes in the predictions of a
checkpoint (docs/performance.md: no label changed on MELD dev). A run's memory grows with its
length, so every ``rotate_s`` the segment is handed over to a fresh run that starts
``left_context_s`` earlier and serves frames only from then on (tested: same windows).

*exact*. The values of the batch extractor, bit for bit. Every ``block_s`` of new audio the LLD frames of that block are
computed with ``left_context_s`` (default :data:`LEFT_CONTEXT_S`, 1 s) of audio before it and
:data:`RIGHT_CONTEXT_S` after it, on a 10 ms frame grid anchored at the segment's first
sample. Measured with openSMILE 2.6 / eGeMAPSv02 (test/test_streaming.py): with >= 0.1 s
of right context a frame is final; with >= 0.5 s of left context every LLD except
jitter and shimmer is *bit-identical* to the same frame of a run over the whole signal
(with 0.3 s pitch-related LLDs differ by up to 2e-2, with none by up to 450 in LLD units);
jitter/shimmer (``*_sma3nz``) carry state through a whole voiced stretch, so they are
identical only when the left context reaches back to unvoiced audio: 1 s covers voiced
stretches up to about 1 s (a longer one makes those two LLDs differ by a few 1e-2 near
block starts). At window close only what the batch run computes differently is
recomputed, from the window's own audio: the first ``left_context_s`` (the batch run has
no left context there), and the tail after the last cached frame; the middle frames
come from the cache. Then the frames are pooled into nodes exactly as
:class:`~synctva_ros.features.audio.OpenSmileAudio` does (``array_split`` into at most
``max_nodes`` segments, mean, segment-centre times); functionals (``level`` with
functionals) are computed at close on the window audio.

Equality with the batch extractor: **exact** (same float32 values, tested) when the
window's audio starts on the segment's 10 ms grid. The grid is anchored to sensor time, not
to the segment: a segment starts at the first sample at or after a multiple of 10 ms
(:func:`~synctva_ros.windowing.buffers.first_sample_at`), and the windower starts window audio
at such a multiple (``windowing.audio_grid_s``), so windows cut from continuous audio line
up. Otherwise, with ``exact=True`` (default)
such windows fall back to the batch extractor; with ``exact=False`` the middle frames are
taken from the nearest grid frame, shifted by less than 5 ms (head, tail, node times and
node count stay those of the batch run). Measured for 3 s windows shifted by 3-5 ms
(synthetic voiced signal and espeak-ng speech): per-node difference relative to each
LLD's range median 0.3-0.6 %, 95th percentile 11-19 %, worst 46-78 % (formant, jitter and
shimmer LLDs, which are sensitive to where a 60 ms pitch window falls) — too coarse to be
the default.

**Visual**. Frames are encoded as they arrive, at ``visual_fps * oversample`` frames per
second (embeddings cached by stamp, older than ``buffer_s`` dropped). At close the batch
rule (:func:`~synctva_ros.features.visual.sample_frames`: targets at ``visual_fps``, at most
``max_frames``) picks the window's frames; each picked frame's embedding is taken from
the cache when that very frame was encoded, or, with ``exact_visual=False`` (default), from the nearest
cached frame within half the encoding period (``0.5 / (visual_fps * oversample)`` s);
other picked frames are encoded at close. Node times are always the picked frames' stamps.

Fallbacks (counted in :attr:`StreamingFeatureCache.stats`): the window's audio is not
covered by the current segment (gap, reset, sample-rate mismatch, started before the cache),
too short to have a cached middle (exact) or to pool (context, < 5 frames), its frames did not
arrive within ``drain_timeout_s``, or it is empty/non-finite: the batch extractor runs.

Threading: ``on_audio``/``on_frame`` (sensor callbacks) and ``features_for`` (the processing
thread) may run in different threads; state is guarded by a lock. Without :meth:`start`,
the work is done in the caller's thread (deterministic; what offline evaluation uses). After
:meth:`start` (what the node does), ``on_audio``/``on_frame`` only queue the data and a
background thread does the openSMILE calls and the frame encoding (ResNet-50 takes ~0.1-0.4 s
per frame on a CPU core, which must not stall a ROS callback); audio is processed before
frames. ``features_for`` first waits (at most ``drain_timeout_s``) for the audio queued so far;
frames not encoded yet are encoded at close. When the queues are full the oldest item is
dropped (``stats["queue_dropped"]``): a dropped chunk starts a new audio segment, so later
windows fall back to the batch extractor rather than use wrong frames.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .features.audio import as_float_mono, lld_frames
from synctva_ros.features.base import FeatureExtractor
from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures
from .features.opensmile_live import LiveOpenSmile, LiveOpenSmileError
from .windowing.buffers import first_sample_at, grid_ceil
from synctva_ros.core.window import UtteranceWindow

__all__ = ["StreamingFeatureCache", "LEFT_CONTEXT_S", "RIGHT_CONTEXT_S", "AUDIO_MODES"]

log = logging.getLogger(__name__)

#: Left context (seconds) that makes openSMILE eGeMAPSv02 LLD frames equal to a whole-signal run
#: (0.5 s suffices for all LLDs except jitter/shimmer, whose ``sma3nz`` state runs through a whole
#: voiced stretch; 1.0 s covers voiced stretches up to about 1 s).
LEFT_CONTEXT_S = 1.0
#: Right context (seconds) after a frame's start that makes it final (measured 0.1 s; margin added).
RIGHT_CONTEXT_S = 0.15
#: ``audio_mode`` values (module docstring).
AUDIO_MODES = ("exact", "context")


def _drop_below(frames: dict[int, Any], oldest: int) -> None:
    """Delete keys ``< oldest`` from a dict filled in (mostly) increasing key order, from its front.

    O(deleted) per call instead of a scan of every key per audio chunk; a key inserted out of order
    (an old run's last frames after a hand-over) is dropped once the keys before it are.
    """
    while frames:
        k = next(iter(frames))
        if k >= oldest:
            return
        del frames[k]


@dataclass
class _LiveRun:
    """One live openSMILE run of the current segment: frame k = offset + local index, served for lo <= k <= hi."""

    offset: int
    lo: int
    hi: float = math.inf
    retire_at: int = 0
    live: Any = None


class StreamingFeatureCache:
    """Audio LLD frames and visual embeddings computed while the utterance is going on.

    Args:
        extractors: ``{modality: extractor or None}`` as built by
            :func:`~synctva_ros.features.registry.build_extractors` (only ``audio``, an
            ``OpenSmileAudio``, and ``visual``, a ``ResNetVisual``, are used).
        buffer_s: seconds of audio and cached embeddings kept.
        block_s: audio processed per openSMILE call while streaming.
        oversample: visual frames encoded per second = ``visual_fps * oversample``.
        exact: audio: only use cached LLD frames that are guaranteed equal to the batch extractor's
            (windows off the 10 ms grid fall back to the batch extractor).
        exact_visual: visual: only use the embedding of the very frame the batch rule picks
            (default False: the nearest cached frame within half the encoding period is used).
        left_context_s: audio before each streamed block (and head recomputed at close), seconds.
        gap_tolerance_s: an audio chunk whose stamp differs from the expected continuation by
            more than this starts a new segment.
        audio_mode: ``"exact"`` (block-wise, the batch values bit for bit) or ``"context"`` (one live
            openSMILE run; falls back to ``"exact"`` with a warning where the installed opensmile
            package cannot stream). See the module docstring.
        rotate_s: context mode: seconds of audio after which a live run is handed over to a fresh one.
        max_queue: background mode: most queued audio chunks.
        max_frame_queue: background mode: most queued camera frames (a 640x480 frame is 0.9 MB; an
            encoder slower than ``visual_fps * oversample`` frames per second drops the oldest, and
            the frames a window needs are then encoded at close).
        drain_timeout_s: background mode: longest wait in ``features_for`` for queued audio.

    Shapes:
        ``on_audio(stamp, samples (S,), sample_rate)``; ``on_frame(stamp, image (H, W, 3) uint8 RGB)``;
        ``features_for(window)`` -> :class:`UtteranceFeatures` with ``audio`` ``(N_a, F_a)`` and
        ``visual`` ``(N_v, F_v)`` as the batch extractors give (``text`` is left ``None``).

    Raises:
        ValueError: ``block_s <= 0``, ``oversample < 1`` or an unknown ``audio_mode``.
    """

    def __init__(self, extractors: Mapping[str, FeatureExtractor | None], buffer_s: float = 30.0,
                 block_s: float = 0.5, oversample: float = 2.0, exact: bool = True,
                 gap_tolerance_s: float = 0.02, left_context_s: float = LEFT_CONTEXT_S,
                 exact_visual: bool = False, max_queue: int = 256, drain_timeout_s: float = 0.5,
                 max_frame_queue: int = 8,
                 audio_mode: str = "exact", rotate_s: float = 60.0) -> None:
        if block_s <= 0 or oversample < 1:
            raise ValueError(f"block_s must be > 0 and oversample >= 1, got {block_s}, {oversample}")
        if audio_mode not in AUDIO_MODES:
            raise ValueError(f"audio_mode must be one of {AUDIO_MODES}, got {audio_mode!r}")
        self.audio_mode = audio_mode
        self.rotate_s = float(rotate_s)
        self.audio_ext = extractors.get("audio")
        self.visual_ext = extractors.get("visual")
        self.buffer_s = float(buffer_s)
        self.exact = bool(exact)
        self.exact_visual = bool(exact_visual)
        self.gap_tolerance_s = float(gap_tolerance_s)
        self.oversample = float(oversample)
        #: Counters: "audio_cache", "audio_batch:<reason>", "visual_hit", "visual_near", "visual_miss",
        #: "audio_reset", "queue_dropped", "drain_timeout".
        self.stats: Counter[str] = Counter()
        self._lock = threading.RLock()
        self.max_queue = max(1, int(max_queue))
        self.max_frame_queue = max(1, int(max_frame_queue))
        self.drain_timeout_s = float(drain_timeout_s)
        self._cond = threading.Condition()
        self._audio_q: deque[tuple[int, float, np.ndarray, int]] = deque()
        self._frame_q: deque[tuple[int, float, np.ndarray]] = deque()
        self._gen = 0  # bumped by reset(): queued items of an older generation are ignored
        self._audio_seq = 0  # audio chunks queued so far
        self._audio_done = 0  # audio chunks processed (or discarded) so far
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._smile = None
        if self.audio_ext is not None and self.audio_ext.level != "functionals":
            import opensmile

            # Own Smile instance: never shares openSMILE state with the batch extractor's thread.
            self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet[self.audio_ext.feature_set],
                                          feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
            self.sr = int(self.audio_ext.sample_rate)
            self.hop = int(round(0.01 * self.sr))
            self.left = int(round(left_context_s * self.sr / self.hop)) * self.hop
            self.right = int(math.ceil(RIGHT_CONTEXT_S * self.sr))
            self.block = max(1, int(round(block_s * self.sr / self.hop))) * self.hop
            # audio kept: the left context + block + right context of the next block (exact) or the left
            # context a resumed / handed-over run is primed with (context), one block of margin
            self._keep = self.left + 2 * self.block + self.right
            if audio_mode == "context":
                try:  # fail early, with the reason, where this opensmile package cannot stream
                    LiveOpenSmile(self.audio_ext.feature_set, self.sr, lambda *a: None).close()
                except LiveOpenSmileError as exc:
                    log.warning("streaming audio_mode 'context' unavailable (%s): using 'exact'", exc)
                    self.audio_mode = audio_mode = "exact"
            if audio_mode == "context":
                # a batch run over S samples gives floor(S / hop) - tail frames (4 for eGeMAPSv02): measure it
                probe = np.random.default_rng(0).normal(0.0, 0.05, self.sr).astype(np.float32)
                self._tail_frames = self.sr // self.hop - self._lld(probe)[0].shape[0]
        self._fcond = threading.Condition()  # context mode: live frames (filled from openSMILE's threads)
        self._seg = 0
        self._runs: list[_LiveRun] = []
        self._closers: list[threading.Thread] = []
        self._lframes: dict[int, tuple[np.ndarray, float]] = {}
        self._reset_audio()
        self._emb: dict[float, np.ndarray] = {}
        self._next_tick = -math.inf

    # ------------------------------------------------------------------ audio
    def _reset_audio(self) -> None:
        self._origin: float | None = None  # sensor time of segment sample 0
        self._buf = np.zeros(0, np.float32)  # samples [self._buf_at, self._buf_at + len)
        self._buf_at = 0
        self._total = 0  # samples received in this segment
        self._next_frame = 0  # grid frames k < this are cached
        self._frames: dict[int, tuple[np.ndarray, float]] = {}  # k -> (LLD vector, frame duration s)
        with self._fcond:
            self._seg += 1  # frames still coming from the old segment's openSMILE runs are ignored
            runs, self._runs = self._runs, []
            self._lframes = {}
        for run in runs:
            self._close_run(run)

    def reset(self) -> None:
        """Forget all audio and visual state, queued data included (e.g. when sensor time jumps back)."""
        with self._cond:
            self._gen += 1
            self._discard_queued()
        with self._lock:
            self._reset_audio()
            self._emb.clear()
            self._next_tick = -math.inf

    def close(self) -> None:
        """Stop the background thread and end the live openSMILE runs (the cache can be used again after)."""
        self.stop()
        self.reset()
        for t in list(self._closers):
            t.join(10.0)

    def _close_run(self, run: "_LiveRun") -> None:
        """End a live run: openSMILE flushes for a few ms, so not in the caller's (a ROS callback's) thread."""
        self._closers = [t for t in self._closers if t.is_alive()]
        t = threading.Thread(target=run.live.close, name="synctva_opensmile_close", daemon=True)
        t.start()
        self._closers.append(t)

    # ------------------------------------------------------------------ background
    @property
    def running(self) -> bool:
        """Whether the background thread is working (:meth:`start`)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Do the streaming work in a background thread from now on (idempotent)."""
        if self.running:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="synctva_streaming", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the background thread (queued data is discarded); later calls work in the caller's thread."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join(timeout_s)
        self._thread = None
        with self._cond:
            self._discard_queued()

    def _discard_queued(self) -> None:
        """Drop the queued audio and frames (caller holds ``_cond``); queued audio counts as done."""
        self._audio_done += len(self._audio_q)
        self._audio_q.clear()
        self._frame_q.clear()
        self._cond.notify_all()

    def _enqueue(self, q: deque, item: tuple, is_audio: bool) -> None:
        with self._cond:
            if len(q) >= (self.max_queue if is_audio else self.max_frame_queue):
                q.popleft()
                self.stats["queue_dropped"] += 1
                if is_audio:
                    self._audio_done += 1
            q.append(item)
            if is_audio:
                self._audio_seq += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._stopping or self._audio_q or self._frame_q):
                    self._cond.wait()
                if self._stopping:
                    return
                is_audio = bool(self._audio_q)
                item = self._audio_q.popleft() if is_audio else self._frame_q.popleft()
                current = item[0] == self._gen
            try:
                if current and is_audio:
                    self._apply_audio(*item[1:], gen=item[0])
                elif current:
                    self._apply_frame(*item[1:], gen=item[0])
            except Exception as exc:  # a feature error must not kill the thread; the batch path still works
                log.warning("streaming %s at %.3f s failed: %s", "audio" if is_audio else "frame", item[1], exc)
            finally:
                if is_audio:
                    with self._cond:
                        self._audio_done += 1
                        self._cond.notify_all()

    def _drain_audio(self, timeout_s: float) -> None:
        """Wait until the audio queued before this call has been processed (background mode)."""
        if not self.running:
            return
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._audio_seq
            while self._audio_done < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stats["drain_timeout"] += 1
                    return
                self._cond.wait(left)

    def _lld(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames, starts, ends = lld_frames(self._smile, x, self.sr)
        return frames, ends - starts

    def on_audio(self, stamp: float, samples: np.ndarray, sample_rate: int) -> None:
        """Add an audio chunk (``(S,)`` float in [-1, 1] or int16) whose first sample is at ``stamp`` seconds.

        A chunk at another sample rate than the extractor's, with NaN/inf, or not continuing the
        segment within ``gap_tolerance_s`` starts a new segment (counted in ``stats["audio_reset"]``).
        After :meth:`start` the chunk is only queued.
        """
        if self._smile is None:
            return
        if self.running:
            self._enqueue(self._audio_q, (self._gen, float(stamp), samples, int(sample_rate)), is_audio=True)
        else:
            self._apply_audio(float(stamp), samples, int(sample_rate), gen=self._gen)

    def _apply_audio(self, stamp: float, samples: np.ndarray, sample_rate: int, gen: int) -> None:
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
                self._reset_audio()
                return
            if self._origin is not None:
                expected = self._origin + self._total / self.sr
                if abs(stamp - expected) > self.gap_tolerance_s:
                    self.stats["audio_reset"] += 1
                    log.debug("audio gap/jump at %.3f s (expected %.3f s): new streaming segment", stamp, expected)
                    self._reset_audio()
            if self._origin is None:
                # anchor the frame grid to sensor time: start at the first sample on a multiple of the hop
                skip = first_sample_at(grid_ceil(stamp, self.hop / self.sr), stamp, self.sr)
                if skip >= x.size:
                    return  # no grid point in this chunk; the next chunk starts the segment
                x = x[max(skip, 0):]
                self._origin = stamp + max(skip, 0) / self.sr
            self._buf = np.concatenate([self._buf, x])
            self._total += x.size
            if self.audio_mode == "context":
                try:
                    self._write_live(x)
                except LiveOpenSmileError as exc:  # counted; later windows use the batch extractor
                    self.stats["audio_live_errors"] += 1
                    log.warning("live openSMILE failed at %.3f s: %s; new streaming segment", stamp, exc)
                    self._reset_audio()
                    return
            else:
                self._process_blocks()
            self._trim_audio()

    def _process_blocks(self) -> None:
        while True:
            k0 = self._next_frame
            s0 = k0 * self.hop
            s1 = s0 + self.block
            if self._total < s1 + self.right:
                return
            a = max(0, s0 - self.left)
            lo = a - self._buf_at
            if lo < 0:  # context trimmed away (cannot happen: _keep covers it); restart grid there
                self._next_frame = int(math.ceil((self._buf_at + self.left) / self.hop))
                continue
            feats, durs = self._lld(self._buf[lo: s1 + self.right - self._buf_at])
            first = a // self.hop
            for i in range(feats.shape[0]):
                k = first + i
                if k0 <= k < k0 + self.block // self.hop:
                    self._frames[k] = (feats[i], float(durs[i]))
            self._next_frame = k0 + self.block // self.hop

    def _trim_audio(self) -> None:
        """Keep the audio the next block or run hand-over reads, and ``buffer_s`` seconds of frames."""
        excess = self._buf.size - self._keep
        if excess > 0:
            excess = (excess // self.hop) * self.hop
            self._buf = self._buf[excess:]
            self._buf_at += excess
        oldest = (self._total - int(self.buffer_s * self.sr) - self.left) // self.hop
        if self.audio_mode == "context":
            with self._fcond:
                _drop_below(self._lframes, oldest)
        else:
            _drop_below(self._frames, oldest)

    # ------------------------------------------------------------------ audio, context mode
    def _start_run(self, offset: int, lo: int) -> "_LiveRun":
        run = _LiveRun(offset=offset, lo=lo)
        seg = self._seg

        def on_frame(k_local: int, lld: np.ndarray, dur: float) -> None:
            k = run.offset + k_local
            with self._fcond:
                if seg != self._seg or not run.lo <= k <= run.hi:
                    return
                self._lframes[k] = (np.nan_to_num(lld), dur)
                self._fcond.notify_all()

        run.live = LiveOpenSmile(self.audio_ext.feature_set, self.sr, on_frame)
        with self._fcond:
            self._runs.append(run)
        return run

    def _write_live(self, x: np.ndarray) -> None:
        """Context mode: write the new samples (already appended to the buffer) to the live run(s)."""
        before = self._total - x.size  # samples of the segment before this chunk
        if not self._runs and before <= 0:
            self._start_run(offset=0, lo=0)
        elif not self._runs:
            # the run was ended at a window close (no audio after the window then) and the segment goes
            # on: a new run, primed with left_context_s of audio, serves the frames from here
            p0 = max(0, ((before - self.left) // self.hop) * self.hop)
            run = self._start_run(offset=p0 // self.hop, lo=-(-before // self.hop))
            run.live.write(self._buf[p0 - self._buf_at: before - self._buf_at])
            self.stats["audio_resumed"] += 1
        for run in list(self._runs):
            run.live.write(x)
        cur = self._runs[-1]
        if len(self._runs) == 1 and cur.live.samples_written > self.rotate_s * self.sr:
            # Hand over to a fresh run (openSMILE's memory grows with a run): the new run starts
            # left_context_s before now, and serves frames from now on, when it has that much context.
            p0 = ((self._total - self.left) // self.hop) * self.hop
            k_switch = (p0 + self.left) // self.hop
            new = self._start_run(offset=p0 // self.hop, lo=k_switch)
            new.live.write(self._buf[p0 - self._buf_at:])
            with self._fcond:
                cur.hi = k_switch - 1
            cur.retire_at = k_switch * self.hop + int(0.5 * self.sr)  # its last frames have arrived by then
            self.stats["audio_rotations"] += 1
        old = self._runs[0]
        if len(self._runs) > 1 and self._total >= old.retire_at:
            with self._fcond:
                self._runs.remove(old)
            self._close_run(old)

    def _context_audio_features(self, window: UtteranceWindow, x: np.ndarray) -> tuple[ModalityFeatures | None, str]:
        """Context mode: pool the live frames of the window's span (at close: pooling only)."""
        ext = self.audio_ext
        S = x.size
        with self._lock:
            if self._origin is None:
                return ext(window), "batch:no_stream"
            d_exact, k_base, n = self._context_span(window.audio_start, S)
            if n < 5:
                return ext(window), "batch:short"
            if k_base < 0 or int(round(d_exact)) + S > self._total:
                return ext(window), "batch:not_covered"
            seg = self._seg
            if self._total < (k_base + n) * self.hop + self.right and self._runs:
                # No audio after the window (a microphone that publishes only during speech, or the end
                # of a bag): openSMILE holds back the last frames until it sees more audio or the end
                # of the input, so end the runs now (it flushes them; a few ms); audio that continues
                # the segment later resumes it in a new run.
                runs, self._runs = self._runs, []
                for run in runs:
                    run.live.close()
                self.stats["audio_ended_runs"] += 1
        want = range(k_base, k_base + n)
        if not self._wait_live(want, seg, self.drain_timeout_s):
            self.stats["drain_timeout"] += 1
        with self._fcond:
            got = [self._lframes.get(k) for k in want] if seg == self._seg else [None]
        if any(g is None for g in got):
            return ext(window), "batch:not_cached"
        frames = np.stack([g[0] for g in got])
        durs = np.array([g[1] for g in got])
        shifted = abs(d_exact - k_base * self.hop) > 0.5
        return self._pool(window, x, frames, durs), "context:shifted" if shifted else "context"

    def _context_span(self, audio_start: float, n_samples: int) -> tuple[float, int, int]:
        """Window audio starting at ``audio_start`` s, ``n_samples`` long -> (its first sample's offset in the
        segment in samples, its first live frame, its frame count = a batch run's over the same audio).
        Caller holds ``_lock`` and the segment has an origin."""
        d_exact = (audio_start - self._origin) * self.sr
        return d_exact, int(round(d_exact / self.hop)), n_samples // self.hop - self._tail_frames

    def _wait_live(self, want: range, seg: int, timeout_s: float) -> bool:
        """Wait until live frames ``want`` of segment ``seg`` are all there (False: timed out)."""
        deadline = time.monotonic() + timeout_s
        with self._fcond:
            # all of them: after a hand-over the old run may still be flushing frames before the switch
            while not (seg != self._seg or all(k in self._lframes for k in want)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._fcond.wait(left)
        return True

    def wait_ready(self, window: UtteranceWindow, timeout_s: float = 10.0) -> bool:
        """Wait until the streaming work the window needs is done (queued audio processed; context mode:
        its live frames arrived), as it is in a live stream by the time the window closes.

        For benchmarks that feed a window's data faster than real time (``synctva bench``).
        Returns False when ``timeout_s`` passed first.
        """
        self._drain_audio(timeout_s)
        if self.audio_mode != "context" or self._smile is None:
            return True
        with self._lock:
            if self._origin is None:
                return True
            _, k_base, n = self._context_span(window.audio_start, np.asarray(window.audio).size)
            if k_base < 0 or n < 5 or self._total < (k_base + n) * self.hop + self.right:
                return True  # features_for will not wait for the live run here
            seg = self._seg
        return self._wait_live(range(k_base, k_base + n), seg, timeout_s)

    def _pool(self, window: UtteranceWindow, x: np.ndarray, frames: np.ndarray, durs: np.ndarray) -> ModalityFeatures:
        """LLD frames ``(T, F)`` on the 10 ms grid from the window's first sample -> audio nodes, by the
        batch extractor's own pooling (:meth:`~synctva_ros.features.audio.OpenSmileAudio.nodes`)."""
        ext = self.audio_ext
        centres = np.arange(frames.shape[0]) * (self.hop / self.sr) + durs / 2.0
        dur = window.end - window.start
        win = dur if dur > 0 else x.size / self.sr
        return ext.nodes(frames, centres, window.audio_start - window.start, win, ext.functionals(x))

    def _audio_features(self, window: UtteranceWindow) -> tuple[ModalityFeatures | None, str]:
        ext = self.audio_ext
        if self._smile is None:
            return ext(window), "batch:functionals_only"
        x = np.asarray(window.audio)
        if x.size == 0 or x.ndim != 1:
            return ext(window), "batch:bad_audio"
        x = as_float_mono(x)
        S = x.size
        if not np.isfinite(x).all():
            return ext(window), "batch:bad_audio"
        if int(window.sample_rate) != self.sr:
            return ext(window), "batch:sample_rate"
        if self.audio_mode == "context":
            return self._context_audio_features(window, x)
        with self._lock:
            if self._origin is None:
                return ext(window), "batch:no_stream"
            d_exact = (window.audio_start - self._origin) * self.sr
            d = int(round(d_exact / self.hop)) * self.hop
            if abs(d_exact - d) > 0.5 and self.exact:
                return ext(window), "batch:off_grid"
            if d < 0 or int(round(d_exact)) + S > self._total:
                return ext(window), "batch:not_covered"
            head = self.left // self.hop  # frames recomputed without left context, as the batch run has none
            k_base = d // self.hop
            # middle frames: cached, and final w.r.t. the window end (right context inside the window)
            last_ok = (S - self.right) // self.hop
            mid_end = min(self._next_frame - k_base, last_ok)
            if mid_end <= head:
                return ext(window), "batch:short"
            middle = [self._frames.get(k_base + j) for j in range(head, mid_end)]
        if any(m is None for m in middle):
            return ext(window), "batch:not_cached"
        hf, hd = self._lld(x[: head * self.hop + self.right])
        t0 = mid_end * self.hop - self.left
        tf, td = self._lld(x[t0:])
        tail_first = mid_end - t0 // self.hop
        frames = np.concatenate([hf[:head], np.stack([m[0] for m in middle]), tf[tail_first:]])
        durs = np.concatenate([hd[:head], np.array([m[1] for m in middle]), td[tail_first:]])
        return self._pool(window, x, frames, durs), "cache" if abs(d_exact - d) <= 0.5 else "cache:shifted"

    # ------------------------------------------------------------------ visual
    def on_frame(self, stamp: float, image: np.ndarray) -> None:
        """Offer a camera frame (``(H, W, 3)`` uint8 RGB at ``stamp`` s); encoded when an encoding tick is due.

        After :meth:`start` the frame is only queued (when a tick is due).
        """
        ext = self.visual_ext
        if ext is None:
            return
        if not self._tick(float(stamp)):
            return
        if self.running:
            self._enqueue(self._frame_q, (self._gen, float(stamp), image), is_audio=False)
        else:
            self._apply_frame(float(stamp), image, gen=self._gen)

    def _tick(self, stamp: float) -> bool:
        """Whether a frame at ``stamp`` is due for encoding (advances the encoding grid)."""
        period = 1.0 / (self.visual_ext.fps * self.oversample)
        with self._lock:
            if stamp < self._next_tick - period - self.gap_tolerance_s - 1.0:  # time went back (bag restart)
                self._emb.clear()
                self._next_tick = -math.inf
            if stamp < self._next_tick or round(stamp, 6) in self._emb:
                return False
            # ticks on a fixed grid, so the encoding rate does not drift below fps * oversample
            self._next_tick = self._next_tick + period if math.isfinite(self._next_tick) else stamp + period
            if self._next_tick <= stamp:
                self._next_tick = stamp + period
            return True

    def _apply_frame(self, stamp: float, image: np.ndarray, gen: int) -> None:
        emb = self.visual_ext.encode_images([image])[0]
        with self._lock:
            if gen != self._gen:
                return
            self._emb[round(stamp, 6)] = emb
            old = [s for s in self._emb if s < stamp - self.buffer_s]
            for s in old:
                del self._emb[s]

    def _visual_features(self, window: UtteranceWindow) -> tuple[ModalityFeatures | None, str]:
        from .features.visual import sample_frames

        ext = self.visual_ext
        frames = list(window.frames)
        if not frames:
            return None, "none"
        idx = sample_frames([f.stamp for f in frames], window.start, window.end, ext.fps, ext.max_frames)
        chosen = [frames[i] for i in idx]
        tol = 0.5 / (ext.fps * self.oversample)
        embs: list[np.ndarray | None] = []
        with self._lock:
            stamps = np.array(sorted(self._emb)) if self._emb else np.zeros(0)
            for f in chosen:
                key = round(f.stamp, 6)
                if key in self._emb:
                    embs.append(self._emb[key])
                    self.stats["visual_hit"] += 1
                    continue
                if not self.exact_visual and stamps.size:
                    j = int(np.abs(stamps - f.stamp).argmin())
                    if abs(stamps[j] - f.stamp) <= tol + 1e-9:
                        embs.append(self._emb[float(stamps[j])])
                        self.stats["visual_near"] += 1
                        continue
                embs.append(None)
        missing = [i for i, e in enumerate(embs) if e is None]
        if missing:
            self.stats["visual_miss"] += len(missing)
            new = ext.encode_images([chosen[i].image for i in missing])
            for i, e in zip(missing, new):
                embs[i] = e
        x = np.stack(embs).astype(np.float32)
        dur = window.end - window.start
        t = np.clip([(f.stamp - window.start) / dur for f in chosen], 0.0, 1.0) if dur > 0 else \
            np.full(len(chosen), 0.5)
        return ModalityFeatures(x, np.asarray(t, np.float32)), f"{len(chosen) - len(missing)}/{len(chosen)} cached"

    # ------------------------------------------------------------------ close
    def features_for(self, window: UtteranceWindow, modalities: tuple[str, ...] = ("audio", "visual"),
                     ) -> UtteranceFeatures:
        """Audio and visual features of a closed window, from the cache where it covers the window.

        Returns:
            :class:`UtteranceFeatures` with ``audio``/``visual`` set (``None`` when absent or when
            that extractor is not configured) and ``text`` ``None``; ``meta["streaming"]`` says per
            modality where the values came from (``"cache"``, ``"cache:shifted"``, ``"k/n cached"``,
            ``"batch:<reason>"``), ``meta["stage_s"]`` the seconds spent per modality.
        """
        feats = UtteranceFeatures(dialogue_id=window.dialogue_id)
        how: dict[str, str] = {}
        stage_s: dict[str, float] = {}
        if "audio" in modalities and self.audio_ext is not None:
            t0 = time.perf_counter()
            self._drain_audio(self.drain_timeout_s)
            feats.audio, how["audio"] = self._audio_features(window)
            stage_s["audio"] = time.perf_counter() - t0
            self.stats["audio_" + how["audio"]] += 1
        if "visual" in modalities and self.visual_ext is not None:
            t0 = time.perf_counter()
            feats.visual, how["visual"] = self._visual_features(window)
            stage_s["visual"] = time.perf_counter() - t0
        feats.meta["streaming"] = how
        feats.meta["stage_s"] = stage_s
        return feats

    def describe(self) -> dict[str, Any]:
        """Counters, cache sizes and queue lengths (for diagnostics)."""
        with self._lock:
            out = {"stats": dict(self.stats), "audio_frames": len(self._frames), "embeddings": len(self._emb)}
        with self._cond:
            out["queued_audio"], out["queued_frames"] = len(self._audio_q), len(self._frame_q)
        return out
