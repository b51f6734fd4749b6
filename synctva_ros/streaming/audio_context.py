"""Streaming audio, ``audio_mode="context"`` (the node's default): one live openSMILE run over the segment.

:class:`~synctva_ros.features.opensmile_live.LiveOpenSmile` computes every frame of the segment
once, as the audio arrives (about 0.04 s of CPU per second of audio), and hands it over about
0.1 s later, well within ``windowing.late_s``; at window close the window's frames are only looked
up and pooled (about 1-3 ms here, against about 60 ms for openSMILE over a 3 s window).

The live frames equal a whole-stream run; they differ from the batch extractor's (which sees only
the window's audio) where the batch run lacks context: the window's first frames (no audio before
them; jitter/shimmer until the first unvoiced frame) and last ~0.1 s. Measured: per node, median
relative difference 0, 95th percentile < 1e-4, worst 0.1-0.4 (a first or last node);
``synctva evaluate --stream`` measures what that changes in the predictions of a checkpoint
(docs/performance.md: no label changed on MELD dev).

A run's memory grows with its length, so every ``rotate_s`` the segment is handed over to a fresh
run that starts ``left_context_s`` earlier and serves frames only from then on (tested: same
windows). A window with no audio after it (a microphone that publishes only during speech, the
end of a bag) ends the runs at close to flush their last frames; audio continuing the segment
later resumes it in a new run primed with ``left_context_s`` of audio.

Threading: frames arrive in openSMILE's own threads (guarded by a condition variable); runs are
ended in short-lived threads, since openSMILE flushes for a few ms and the caller may be a ROS
callback.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from synctva_ros.core.batch import ModalityFeatures
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.features.opensmile_live import LiveOpenSmile, LiveOpenSmileError
from synctva_ros.streaming.audio_stream import AudioStream, drop_below

__all__ = ["ContextAudio"]

log = logging.getLogger(__name__)


@dataclass
class _LiveRun:
    """One live openSMILE run of the current segment: frame k = offset + local index, served for lo <= k <= hi."""

    offset: int
    lo: int
    hi: float = math.inf
    retire_at: int = 0
    live: Any = None


class ContextAudio(AudioStream):
    """Live openSMILE over the segment; a window's frames are looked up and pooled at close (module docstring).

    Args:
        ext, stats, buffer_s, block_s, left_context_s, gap_tolerance_s: as
            :class:`~synctva_ros.streaming.audio_stream.AudioStream`.
        rotate_s: seconds of audio after which a live run is handed over to a fresh one.

    Shapes:
        live frame ``k``: ``(F_lld,)`` float32 LLD vector (NaN -> 0) and its duration in seconds; a
        window's nodes ``x (N_a, F_a)``, ``t (N_a,)`` as ``ext(window)``.

    Raises:
        LiveOpenSmileError: the installed opensmile package cannot stream (the caller falls back to exact).
    """

    mode = "context"

    def __init__(self, ext: OpenSmileAudio, stats: Counter[str], *, buffer_s: float, block_s: float,
                 left_context_s: float, gap_tolerance_s: float, rotate_s: float = 60.0) -> None:
        # fail early, with the reason, where this opensmile package cannot stream
        LiveOpenSmile(ext.feature_set, int(ext.sample_rate), lambda *a: None).close()
        self.rotate_s = float(rotate_s)
        self._fcond = threading.Condition()  # live frames and runs (filled from openSMILE's threads)
        self._seg = 0  # bumped per segment: frames still coming from an old segment's runs are ignored
        self._runs: list[_LiveRun] = []
        self._closers: list[threading.Thread] = []
        self._lframes: dict[int, tuple[np.ndarray, float]] = {}
        super().__init__(ext, stats, buffer_s=buffer_s, block_s=block_s, left_context_s=left_context_s,
                         gap_tolerance_s=gap_tolerance_s)
        # a batch run over S samples gives floor(S / hop) - tail frames (4 for eGeMAPSv02): measure it
        probe = np.random.default_rng(0).normal(0.0, 0.05, self.sr).astype(np.float32)
        self._tail_frames = self.sr // self.hop - self._lld(probe)[0].shape[0]

    # ------------------------------------------------------------------ segment hooks
    def _end_segment(self) -> None:
        with self._fcond:
            self._seg += 1
            runs, self._runs = self._runs, []
            self._lframes = {}
        for run in runs:
            self._close_run(run)

    def _drop_frames(self, oldest: int) -> None:
        with self._fcond:
            drop_below(self._lframes, oldest)

    def frame_count(self) -> int:
        with self._fcond:
            return len(self._lframes)

    def close(self) -> None:
        for t in list(self._closers):
            t.join(10.0)

    # ------------------------------------------------------------------ runs
    def _start_run(self, offset: int, lo: int) -> _LiveRun:
        run = _LiveRun(offset=offset, lo=lo)
        seg = self._seg

        def on_frame(k_local: int, lld: np.ndarray, dur: float) -> None:
            k = run.offset + k_local
            with self._fcond:
                if seg != self._seg or not run.lo <= k <= run.hi:
                    return
                self._lframes[k] = (np.nan_to_num(lld), dur)
                self._fcond.notify_all()

        run.live = LiveOpenSmile(self.ext.feature_set, self.sr, on_frame)
        with self._fcond:
            self._runs.append(run)
        return run

    def _close_run(self, run: _LiveRun) -> None:
        """End a live run: openSMILE flushes for a few ms, so not in the caller's (a ROS callback's) thread."""
        self._closers = [t for t in self._closers if t.is_alive()]
        t = threading.Thread(target=run.live.close, name="synctva_opensmile_close", daemon=True)
        t.start()
        self._closers.append(t)

    def _consume(self, x: np.ndarray, stamp: float) -> None:
        try:
            self._write_live(x)
        except LiveOpenSmileError as exc:  # counted; later windows use the batch extractor
            self.stats["audio_live_errors"] += 1
            log.warning("live openSMILE failed at %.3f s: %s; new streaming segment", stamp, exc)
            self._restart()

    def _write_live(self, x: np.ndarray) -> None:
        """Write the new samples (already appended to the buffer) to the live run(s)."""
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

    # ------------------------------------------------------------------ close
    def _span(self, audio_start: float, n_samples: int) -> tuple[float, int, int]:
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

    def wait_ready(self, window: UtteranceWindow, timeout_s: float) -> bool:
        """Wait until the window's live frames arrived, as they have in a live stream by the time it closes."""
        with self._lock:
            if self._origin is None:
                return True
            _, k_base, n = self._span(window.audio_start, np.asarray(window.audio).size)
            if k_base < 0 or n < 5 or self._total < (k_base + n) * self.hop + self.right:
                return True  # features() will not wait for the live run here
            seg = self._seg
        return self._wait_live(range(k_base, k_base + n), seg, timeout_s)

    def _serve(self, window: UtteranceWindow, x: np.ndarray,
               timeout_s: float) -> tuple[ModalityFeatures | None, str]:
        """Pool the live frames of the window's span (waiting at most ``timeout_s`` s for the last ones)."""
        ext = self.ext
        S = x.size
        with self._lock:
            if self._origin is None:
                return ext(window), "batch:no_stream"
            d_exact, k_base, n = self._span(window.audio_start, S)
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
        if not self._wait_live(want, seg, timeout_s):
            self.stats["drain_timeout"] += 1
        with self._fcond:
            got = [self._lframes.get(k) for k in want] if seg == self._seg else [None]
        if any(g is None for g in got):
            return ext(window), "batch:not_cached"
        frames = np.stack([g[0] for g in got])
        durs = np.array([g[1] for g in got])
        shifted = abs(d_exact - k_base * self.hop) > 0.5
        return self._pool(window, x, frames, durs), "context:shifted" if shifted else "context"
