"""Voice-activity segmentation of a timed audio stream with WebRTC VAD.

Source: the WebRTC voice activity detector (``webrtcvad`` from the
``webrtcvad-wheels`` package), which classifies 10/20/30 ms frames of 16-bit
mono PCM at 8/16/32/48 kHz as speech or not. This module turns those frame
decisions into speech segments in sensor time:

* a segment opens at the start of the first speech frame;
* it closes when ``hangover_s`` seconds of non-speech follow its last speech
  frame, or when it reaches ``max_segment_s``; its end is the end of its last
  speech frame;
* segments shorter than ``min_speech_s`` are discarded.

Audio is consumed in arrival order. A chunk that starts later than the
expected next sample leaves a gap: gaps up to ``hangover_s`` are filled with
silence, longer ones close the open segment and restart the stream at the new
time. Samples that overlap audio already consumed are skipped.
"""

from __future__ import annotations

import logging
import math

import numpy as np

__all__ = ["VoiceActivitySegmenter", "VAD_SAMPLE_RATES", "VAD_FRAME_MS"]

log = logging.getLogger(__name__)

#: Sample rates (Hz) WebRTC VAD accepts.
VAD_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 32000, 48000)
#: Frame lengths (ms) WebRTC VAD accepts.
VAD_FRAME_MS: tuple[int, ...] = (10, 20, 30)


class VoiceActivitySegmenter:
    """Speech segments ``(start, end)`` in seconds from timed mono float32 chunks.

    Args:
        sample_rate: Hz, one of :data:`VAD_SAMPLE_RATES`.
        aggressiveness: WebRTC mode 0 (least aggressive about filtering out
            non-speech) .. 3 (most).
        frame_ms: analysis frame, one of :data:`VAD_FRAME_MS` milliseconds.
        min_speech_s: shortest segment reported (seconds).
        hangover_s: silence after the last speech frame that ends a segment (seconds).
        max_segment_s: longest segment; a longer one is closed and a new one
            starts (seconds; ``inf`` = unbounded).

    Raises:
        ValueError: unsupported sample rate, frame length or aggressiveness.
        ImportError: ``webrtcvad`` is not installed (``pip install webrtcvad-wheels``).
    """

    def __init__(self, sample_rate: int = 16000, aggressiveness: int = 2, frame_ms: int = 30,
                 min_speech_s: float = 0.3, hangover_s: float = 0.5,
                 max_segment_s: float = math.inf) -> None:
        if int(sample_rate) not in VAD_SAMPLE_RATES:
            raise ValueError(f"WebRTC VAD needs a sample rate in {VAD_SAMPLE_RATES} Hz, got {sample_rate}")
        if int(frame_ms) not in VAD_FRAME_MS:
            raise ValueError(f"WebRTC VAD needs frame_ms in {VAD_FRAME_MS}, got {frame_ms}")
        if not 0 <= int(aggressiveness) <= 3:
            raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
        import webrtcvad  # deferred: optional C extension (webrtcvad-wheels), needed only when the VAD runs

        self.sample_rate = int(sample_rate)
        self.frame_ms = int(frame_ms)
        self.frame_len = self.sample_rate * self.frame_ms // 1000
        self.min_speech_s = float(min_speech_s)
        self.hangover_s = float(hangover_s)
        self.max_segment_s = float(max_segment_s)
        self._vad = webrtcvad.Vad(int(aggressiveness))
        self.onsets: list[float] = []
        self.reset()

    @classmethod
    def from_config(cls, cfg, sample_rate: int = 16000) -> "VoiceActivitySegmenter":
        """Build from a :class:`~synctva_ros.config.WindowingConfig` (``vad_*`` fields, ``max_window_s``)."""
        return cls(sample_rate, cfg.vad_aggressiveness, cfg.vad_frame_ms, cfg.vad_min_speech_s,
                   cfg.vad_hangover_s, cfg.max_window_s)

    def reset(self) -> None:
        """Forget the stream (pending samples, open segment, onset history)."""
        self._pending = np.zeros(0, np.int16)
        self._pending_t: float | None = None  # time of _pending[0]
        self._next_t: float | None = None  # time just after the last consumed sample
        self._onset: float | None = None  # open segment start
        self._last_speech_end: float | None = None
        self.onsets = []

    @property
    def in_speech(self) -> bool:
        """Whether a segment is open."""
        return self._onset is not None

    def last_onset(self, before: float, within: float = math.inf) -> float | None:
        """Latest speech onset ``t`` with ``before - within <= t <= before`` (seconds), or ``None``."""
        for t in reversed(self.onsets):
            if t <= before:
                return t if t >= before - within else None
        return None

    def feed(self, stamp: float, samples: np.ndarray) -> list[tuple[float, float]]:
        """Consume a chunk whose first sample is at ``stamp`` seconds.

        Args:
            stamp: sensor time of ``samples[0]`` (seconds).
            samples: ``(S,)`` float32 mono in [-1, 1] at :attr:`sample_rate`.

        Returns:
            Segments ``(start, end)`` (seconds) completed by this chunk, in time order.
        """
        sr = self.sample_rate
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        out: list[tuple[float, float]] = []
        if x.size == 0 or not math.isfinite(stamp):
            return out
        if self._next_t is not None:
            skip = int(round((self._next_t - stamp) * sr))
            if skip >= x.size:
                return out  # entirely old audio
            if skip > 0:
                x, stamp = x[skip:], stamp + skip / sr
            elif skip < 0:
                gap = -skip / sr
                if gap <= max(self.hangover_s, self.frame_ms / 1000.0):
                    x = np.concatenate([np.zeros(-skip, np.float32), x])
                    stamp = self._next_t
                else:
                    out.extend(self.flush())
                    self._pending = np.zeros(0, np.int16)
                    self._pending_t = None
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
        if self._pending_t is None:
            self._pending_t = stamp
        self._pending = np.concatenate([self._pending, pcm])
        self._next_t = stamp + x.size / sr
        n = self.frame_len
        nframes = self._pending.size // n
        for k in range(nframes):
            frame = self._pending[k * n:(k + 1) * n]
            t0 = self._pending_t + k * n / sr
            t1 = t0 + n / sr
            seg = self._step(t0, t1, self._vad.is_speech(frame.tobytes(), sr))
            if seg is not None:
                out.append(seg)
        if nframes:
            self._pending = self._pending[nframes * n:]
            self._pending_t = self._pending_t + nframes * n / sr
        return out

    def _step(self, t0: float, t1: float, speech: bool) -> tuple[float, float] | None:
        seg = None
        if speech:
            if self._onset is None:
                self._onset = t0
                self.onsets.append(t0)
                del self.onsets[:-64]
            self._last_speech_end = t1
            if t1 - self._onset >= self.max_segment_s:
                seg = self._close()
        elif self._onset is not None and t1 - self._last_speech_end >= self.hangover_s:
            seg = self._close()
        return seg

    def _close(self) -> tuple[float, float] | None:
        start, end = self._onset, self._last_speech_end
        self._onset = None
        self._last_speech_end = None
        if start is None or end is None or end - start < self.min_speech_s:
            return None
        return (start, end)

    def flush(self) -> list[tuple[float, float]]:
        """Close the open segment, if any (end of stream). Returns it (or nothing if too short)."""
        seg = self._close() if self._onset is not None else None
        return [seg] if seg is not None else []
