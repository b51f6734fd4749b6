"""Streaming audio, ``audio_mode="exact"``: the batch extractor's LLD values, bit for bit.

Every ``block_s`` of new audio the LLD frames of that block are computed with
``left_context_s`` (default :data:`~synctva_ros.streaming.audio_stream.LEFT_CONTEXT_S`, 1 s) of
audio before it and :data:`~synctva_ros.streaming.audio_stream.RIGHT_CONTEXT_S` after it, on a
10 ms frame grid anchored at the segment's first sample. Measured with openSMILE 2.6 /
eGeMAPSv02 (test/streaming/test_audio_exact.py): with >= 0.1 s of right context a frame is
final; with >= 0.5 s of left context every LLD except jitter and shimmer is *bit-identical* to
the same frame of a run over the whole signal (with 0.3 s pitch-related LLDs differ by up to
2e-2, with none by up to 450 in LLD units); jitter/shimmer (``*_sma3nz``) carry state through a
whole voiced stretch, so they are identical only when the left context reaches back to unvoiced
audio: 1 s covers voiced stretches up to about 1 s (a longer one makes those two LLDs differ by
a few 1e-2 near block starts).

At window close only what the batch run computes differently is recomputed, from the window's
own audio: the first ``left_context_s`` (the batch run has no left context there), and the tail
after the last cached frame; the middle frames come from the cache. Then the frames are pooled
into nodes exactly as :class:`~synctva_ros.features.audio.OpenSmileAudio` does (``array_split``
into at most ``max_nodes`` segments, mean, segment-centre times); functionals (``level`` with
functionals) are computed at close on the window audio.

Equality with the batch extractor: **exact** (same float32 values, tested) when the window's
audio starts on the segment's 10 ms grid, as windows cut by the windower do
(:mod:`~synctva_ros.streaming.audio_stream`). Otherwise, with ``exact=True`` (default) such
windows fall back to the batch extractor (``"batch:off_grid"``); with ``exact=False`` the middle
frames are taken from the nearest grid frame, shifted by less than 5 ms (head, tail, node times
and node count stay those of the batch run; ``"cache:shifted"``). Measured for 3 s windows
shifted by 3-5 ms (synthetic voiced signal and espeak-ng speech): per-node difference relative to
each LLD's range median 0.3-0.6 %, 95th percentile 11-19 %, worst 46-78 % (formant, jitter and
shimmer LLDs, which are sensitive to where a 60 ms pitch window falls) — too coarse to be the
default.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from synctva_ros.core.batch import ModalityFeatures
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.streaming.audio_stream import AudioStream, drop_below

__all__ = ["ExactAudio"]


class ExactAudio(AudioStream):
    """Block-wise openSMILE over the segment; served windows equal the batch extractor's (module docstring).

    Args:
        ext, stats, buffer_s, block_s, left_context_s, gap_tolerance_s: as
            :class:`~synctva_ros.streaming.audio_stream.AudioStream`.
        exact: only use cached LLD frames that are guaranteed equal to the batch extractor's (windows off
            the 10 ms grid fall back to the batch extractor); False: shift them to the nearest grid frame.

    Shapes:
        cached frame ``k``: ``(F_lld,)`` float32 LLD vector and its duration in seconds; a window's
        nodes ``x (N_a, F_a)``, ``t (N_a,)`` as ``ext(window)``.
    """

    mode = "exact"

    def __init__(self, ext: OpenSmileAudio, stats: Counter[str], *, buffer_s: float, block_s: float,
                 left_context_s: float, gap_tolerance_s: float, exact: bool = True) -> None:
        self.exact = bool(exact)
        super().__init__(ext, stats, buffer_s=buffer_s, block_s=block_s, left_context_s=left_context_s,
                         gap_tolerance_s=gap_tolerance_s)

    def _end_segment(self) -> None:
        self._next_frame = 0  # grid frames k < this are cached
        self._frames: dict[int, tuple[np.ndarray, float]] = {}  # k -> (LLD vector, frame duration s)

    def _drop_frames(self, oldest: int) -> None:
        drop_below(self._frames, oldest)

    def frame_count(self) -> int:
        with self._lock:
            return len(self._frames)

    def _consume(self, x: np.ndarray, stamp: float) -> None:
        """Compute every block that now has its right context."""
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

    def _serve(self, window: UtteranceWindow, x: np.ndarray,
               timeout_s: float) -> tuple[ModalityFeatures | None, str]:
        """Head and tail recomputed from the window's audio, the middle from the cache (``timeout_s`` unused:
        the blocks were computed when the audio was added)."""
        ext = self.ext
        S = x.size
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
