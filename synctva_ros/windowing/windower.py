"""Utterance windowing: camera, microphone and speech-to-text streams -> :class:`UtteranceWindow`.

All times are sensor time in seconds (the ``header.stamp`` of the messages,
REP-103), never arrival time, so that a live robot, a bag replayed onto topics
and a bag read offline (:func:`synctva_ros.bags.reader.windows_from_bag`) give
the same windows. The node and the bag reader drive it identically: every
incoming message is added, then :meth:`UtteranceWindower.poll` is called with
``now`` = that message's header stamp; at the end (bag end, shutdown)
:meth:`UtteranceWindower.flush`.

Rules
-----
1. **Closing.** A *final* transcript closes a window; partial transcripts are
   ignored (counted in ``partial_transcripts``). An empty or whitespace-only
   final transcript makes no window (``empty_transcripts``). Overlapping
   transcripts are allowed: each gets its own window.
2. **Bounds.** ``[start, end]`` come from the transcript. An unknown end
   (``end <= 0`` or NaN) becomes the transcript stamp; an unknown start (NaN,
   ``start > end``, an unknown end, or ``start <= 0`` while ``end >
   max_window_s``, i.e. clearly unset) becomes the last voice-activity onset
   within ``max_window_s`` before ``end`` when the VAD runs, else ``end -
   default_window_s``. Windows longer than ``max_window_s`` are clipped to
   their last ``max_window_s`` seconds (``clipped_windows``); shorter than
   ``min_window_s`` are widened backwards to it (``widened_windows``).
3. **Emission.** A window is emitted by the first ``poll(now)`` with
   ``end + late_s <= now``; it gathers the frames with stamps in ``[start,
   end]`` and the audio samples in ``[g, end]`` buffered at that moment, where
   ``g`` is ``start`` rounded down to a multiple of ``audio_grid_s`` seconds
   of sensor time (so that window audio starts on the 10 ms frame grid of the
   streaming openSMILE cache, :mod:`synctva_ros.streaming`; ``audio_start``
   gives the time of the first sample).
   ``poll`` returns windows ordered by ``(end, start, utterance_id,
   transcript)``, so the result does not depend on arrival order.
4. **Late data.** Data older than the end of a window already emitted (the
   *watermark*) is dropped (``late_frames`` / ``late_audio``). Hence every item
   that arrives no later than ``late_s`` after its own stamp (in ``now`` terms)
   reaches every window that contains it.
5. **Order.** Duplicates (a frame stamp, or an audio chunk start within half a
   sample, already buffered) are dropped (``duplicates``). Out-of-order items
   within the buffer horizon are inserted in order (``out_of_order``); older
   ones are dropped as late.
6. **Time reset.** A sensor stream (frames or audio) going back in time by
   more than ``time_reset_s`` (a bag restarted, a simulator reset) resets all
   state (``time_resets``, logged): windows still pending are first built from
   the data buffered so far and returned by the next :meth:`poll`.
   Transcripts never trigger a reset (speech-to-text may legitimately report an
   older utterance late); they only follow one.
7. **Bad data never raises** in ``add_*``: a wrong image shape or dtype
   (``rejected_frames``), NaN/inf or non-1-D audio or a bad sample rate
   (``rejected_audio``), a non-finite time or non-string text
   (``rejected_transcripts``) is a counted warning on logger
   ``synctva_ros.windowing``.
8. **Sample rate.** Audio at another rate than the windower's is resampled
   with ``scipy.signal.resample_poly`` (``resampled_audio``), see
   :func:`synctva_ros.core.codecs.resample`.
9. **Voice activity.** With ``vad_enabled``, all audio also feeds a WebRTC VAD
   (:mod:`synctva_ros.windowing.vad`). When no transcript has been seen for
   ``stt_timeout_s`` (or ever) at the end of a speech segment, the segment
   becomes a window (``closed_by="vad"``, ``transcript=None``,
   ``utterance_id="vad<n>"``). If speech-to-text comes back later both kinds
   may cover the same speech once.
10. **Feature streaming.** An optional *sink* (:class:`StreamSink`, e.g.
    :class:`synctva_ros.streaming.StreamingFeatureCache`) is given every frame
    and audio chunk the windower keeps (after thinning, duplicate and late
    checks and resampling, so at the windower's sample rate) and is reset with
    the windower.
11. **Bounds on memory.** Frame and audio buffers keep ``buffer_s`` seconds
    (frames also at most ``max_frames``); at most ``max_pending`` windows wait
    (the earliest-ending is dropped beyond that, ``dropped_windows``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from synctva_ros.config import WindowingConfig
from synctva_ros.windowing.buffers import AudioBuffer, FrameBuffer, grid_floor
from synctva_ros.core.codecs import resample
from synctva_ros.windowing.vad import VAD_SAMPLE_RATES, VoiceActivitySegmenter
from synctva_ros.core.window import TimedFrame, UtteranceWindow

__all__ = ["UtteranceWindower", "StreamSink", "STAT_KEYS"]

log = logging.getLogger("synctva_ros.windowing")

#: Counters reported by :attr:`UtteranceWindower.stats`.
STAT_KEYS: tuple[str, ...] = (
    "frames", "audio_chunks", "transcripts", "partial_transcripts", "empty_transcripts",
    "windows", "vad_windows", "dropped_windows", "clipped_windows", "widened_windows",
    "late_frames", "late_audio", "duplicates", "out_of_order", "time_resets", "gaps",
    "rejected_frames", "rejected_audio", "rejected_transcripts", "resampled_audio",
    "evicted_frames", "evicted_audio", "unknown_end", "unknown_start", "thinned_frames",
)


class StreamSink(Protocol):
    """What the windower hands kept sensor data to (rule 10); implemented by
    :class:`synctva_ros.streaming.StreamingFeatureCache`."""

    def on_audio(self, stamp: float, samples: np.ndarray, sample_rate: int) -> None:
        """A kept audio chunk: ``(S,)`` float32 mono at ``sample_rate`` Hz, first sample at ``stamp`` s."""

    def on_frame(self, stamp: float, image: np.ndarray) -> None:
        """A kept camera frame: ``(H, W, 3)`` uint8 RGB at ``stamp`` s."""

    def reset(self) -> None:
        """The windower was reset (time went back): forget everything."""


@dataclass
class _Pending:
    start: float
    end: float
    transcript: str | None
    closed_by: str
    utterance_id: str
    dialogue_id: str
    language: str
    confidence: float
    seq: int

    def key(self) -> tuple:
        return (self.end, self.start, self.utterance_id, self.transcript or "", self.closed_by, self.seq)


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


class UtteranceWindower:
    """Groups buffered camera frames and audio into utterance windows (rules in the module docstring).

    Args:
        cfg: windowing section of the configuration.
        sample_rate: rate (Hz) of the window audio; input at other rates is resampled.
        sink: receives every kept frame and audio chunk (rule 10); see :meth:`set_sink`.

    Raises:
        ValueError: ``sample_rate <= 0``, or ``vad_enabled`` with a ``vad_frame_ms``
            that WebRTC VAD does not accept (10, 20, 30).
    """

    def __init__(self, cfg: WindowingConfig | None = None, sample_rate: int = 16000,
                 sink: StreamSink | None = None) -> None:
        self.sink = sink
        self.cfg = cfg if cfg is not None else WindowingConfig()
        if int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self._vad_rate = self.sample_rate if self.sample_rate in VAD_SAMPLE_RATES else 16000
        self._vad: VoiceActivitySegmenter | None = None
        if self.cfg.vad_enabled:
            self._vad = VoiceActivitySegmenter.from_config(self.cfg, self._vad_rate)
        self._stats = dict.fromkeys(STAT_KEYS, 0)
        self._frames = FrameBuffer(self.cfg.buffer_s, self.cfg.max_frames)
        self._audio = AudioBuffer(self.cfg.buffer_s, self.sample_rate)
        self._ready: list[UtteranceWindow] = []
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, clear_stats: bool = False) -> None:
        """Forget all buffered data, pending windows and time history (counters kept unless ``clear_stats``)."""
        self._frames.clear()
        self._audio.clear()
        self._pending: list[_Pending] = []
        self._ready = []
        self._watermark = -math.inf
        self._latest: dict[str, float] = {}
        self._last_transcript: float | None = None
        self._seq = 0
        self._vad_count = 0
        self._last_kept_frame: float | None = None
        if self._vad is not None:
            self._vad.reset()
        if self.sink is not None:
            self.sink.reset()
        if clear_stats:
            self._stats = dict.fromkeys(STAT_KEYS, 0)

    def set_sink(self, sink: StreamSink | None) -> None:
        """Hand kept frames and audio to ``sink`` from now on (``None``: to nobody); resets the sink."""
        self.sink = sink
        if sink is not None:
            sink.reset()

    def count(self, key: str) -> int:
        """One counter of :data:`STAT_KEYS` (cheaper than :attr:`stats`, which copies them all)."""
        if key == "evicted_frames":
            return self._stats[key] + self._frames.evicted
        if key == "evicted_audio":
            return self._stats[key] + self._audio.evicted
        return self._stats[key]

    @property
    def stats(self) -> dict[str, int]:
        """Counters (see :data:`STAT_KEYS`), a copy."""
        return {k: self.count(k) for k in STAT_KEYS}

    @property
    def latest_stamp(self) -> float | None:
        """Newest sensor time seen on any stream since the last reset (seconds), or ``None``."""
        return max(self._latest.values()) if self._latest else None

    @property
    def pending(self) -> int:
        """Windows waiting for ``end + late_s``."""
        return len(self._pending)

    @property
    def buffered_frames(self) -> int:
        """Frames held in the frame buffer."""
        return len(self._frames)

    @property
    def buffered_audio_s(self) -> float:
        """Seconds of audio samples held in the audio buffer."""
        return self._audio.total_samples / self.sample_rate

    def _warn(self, counter: str, msg: str, *args) -> None:
        self._stats[counter] += 1
        n = self._stats[counter]
        if n <= 5 or n % 1000 == 0:
            log.warning("%s (%s #%d)" % (msg, counter, n), *args)

    def _check_time(self, stream: str, t: float) -> None:
        last = self._latest.get(stream)
        if last is not None and t < last - self.cfg.time_reset_s:
            log.warning("sensor time of %s went back from %.3f to %.3f s (> time_reset_s=%.3f): "
                        "resetting the windower", stream, last, t, self.cfg.time_reset_s)
            self._stats["time_resets"] += 1
            closed_at = self.latest_stamp or t
            ready = self._ready + [self._build(p, closed_at) for p in sorted(self._pending, key=_Pending.key)]
            self._stats["evicted_frames"] += self._frames.evicted
            self._stats["evicted_audio"] += self._audio.evicted
            self._frames.evicted = self._audio.evicted = 0
            self.reset()
            self._ready = ready
            last = None
        self._latest[stream] = t if last is None else max(last, t)

    # ------------------------------------------------------------------ inputs
    def wants_frame(self, stamp: float) -> bool:
        """Whether a frame stamped ``stamp`` would be kept by the ``frame_keep_hz`` thinning.

        Frames closer than ``0.95 / cfg.frame_keep_hz`` seconds (5 % tolerance for stamp
        jitter) after the last kept frame are not needed (the visual encoder samples at most a few frames per second), so a
        caller may skip decoding them (:meth:`thin_frame`); :meth:`add_frame` applies the same rule.
        """
        hz = self.cfg.frame_keep_hz
        last = self._last_kept_frame
        return not (hz > 0 and last is not None and last <= stamp < last + 0.95 / hz)

    def thin_frame(self, stamp: float) -> bool:
        """Count and skip a frame the thinning would drop, before it is decoded.

        Returns:
            True when the frame stamped ``stamp`` is not needed (counted in ``thinned_frames``,
            as :meth:`add_frame` would); False when the caller should decode it and call
            :meth:`add_frame`.
        """
        if _finite(stamp) and not self.wants_frame(float(stamp)):
            self._stats["thinned_frames"] += 1
            return True
        return False

    def add_frame(self, stamp: float, image: np.ndarray) -> None:
        """Buffer one camera frame.

        Args:
            stamp: sensor time in seconds.
            image: ``(H, W, 3)`` uint8 RGB.
        """
        if self.thin_frame(stamp):
            return
        if not _finite(stamp):
            self._warn("rejected_frames", "frame with non-finite stamp %r dropped", stamp)
            return
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
                and image.dtype == np.uint8 and image.size > 0):
            desc = (image.shape, image.dtype) if isinstance(image, np.ndarray) else type(image).__name__
            self._warn("rejected_frames", "frame at %.3f s is not an (H, W, 3) uint8 image: %s dropped",
                       stamp, desc)
            return
        stamp = float(stamp)
        self._check_time("frame", stamp)
        if stamp < self._watermark:
            self._warn("late_frames", "frame at %.3f s is older than an emitted window (ends %.3f s): dropped",
                       stamp, self._watermark)
            return
        image = np.ascontiguousarray(image)
        res = self._frames.insert(TimedFrame(stamp, image))
        if res == "duplicate":
            self._warn("duplicates", "duplicate frame at %.6f s dropped", stamp)
        elif res == "too_old":
            self._warn("late_frames", "frame at %.3f s is older than the buffer horizon: dropped", stamp)
        else:
            self._stats["frames"] += 1
            if self._last_kept_frame is None or stamp > self._last_kept_frame:
                self._last_kept_frame = stamp
            if res == "inserted":
                self._stats["out_of_order"] += 1
            if self.sink is not None:
                self.sink.on_frame(stamp, image)

    def add_audio(self, stamp: float, samples: np.ndarray, sample_rate: int) -> None:
        """Buffer one chunk of microphone audio (and feed the VAD).

        Args:
            stamp: sensor time of the first sample (seconds).
            samples: ``(S,)`` float32 mono in [-1, 1]; an ``(S, 1)`` array is accepted.
            sample_rate: Hz; resampled to the windower's rate when different.
        """
        if not _finite(stamp):
            self._warn("rejected_audio", "audio chunk with non-finite stamp %r dropped", stamp)
            return
        try:
            x = np.asarray(samples, dtype=np.float32)
            sr = int(sample_rate)
        except (TypeError, ValueError) as e:
            self._warn("rejected_audio", "audio chunk at %.3f s cannot be read: %s", stamp, e)
            return
        if x.ndim == 2 and 1 in x.shape:
            x = x.reshape(-1)
        if x.ndim != 1 or sr <= 0:
            self._warn("rejected_audio", "audio chunk at %.3f s has shape %s / rate %s: dropped",
                       stamp, x.shape, sample_rate)
            return
        if x.size == 0:
            return
        if not np.isfinite(x).all():
            self._warn("rejected_audio", "audio chunk at %.3f s has NaN/inf samples: dropped", stamp)
            return
        if sr != self.sample_rate:
            x = resample(x, sr, self.sample_rate)
            self._stats["resampled_audio"] += 1
        stamp = float(stamp)
        self._check_time("audio", stamp)
        end = stamp + x.size / self.sample_rate
        if end <= self._watermark:
            self._warn("late_audio", "audio chunk at %.3f s ends before an emitted window (%.3f s): dropped",
                       stamp, self._watermark)
            return
        res = self._audio.insert(stamp, x)
        if res == "duplicate":
            self._warn("duplicates", "duplicate audio chunk at %.6f s dropped", stamp)
            return
        if res == "too_old":
            self._warn("late_audio", "audio chunk at %.3f s is older than the buffer horizon: dropped", stamp)
            return
        self._stats["audio_chunks"] += 1
        if res == "inserted":
            self._stats["out_of_order"] += 1
        if self.sink is not None:
            self.sink.on_audio(stamp, x, self.sample_rate)
        if self._vad is not None:
            v = x if self._vad_rate == self.sample_rate else resample(x, self.sample_rate, self._vad_rate)
            for seg in self._vad.feed(stamp, v):
                self._on_speech(*seg)

    def add_transcript(self, text: str, start: float, end: float, is_final: bool,
                       stamp: float | None = None, utterance_id: str = "", dialogue_id: str = "",
                       language: str = "", confidence: float = float("nan")) -> None:
        """Register a speech-to-text result; a final one opens a pending window.

        Args:
            text: recognised text.
            start, end: utterance bounds in sensor time (seconds); ``end <= 0`` = unknown.
            is_final: only final results make windows.
            stamp: sensor time the result was produced (seconds), if known.
            utterance_id, dialogue_id, language, confidence: copied to the window.
        """
        if not isinstance(text, str):
            self._warn("rejected_transcripts", "transcript text is %s, not str: dropped", type(text).__name__)
            return
        stamp_f = float(stamp) if stamp is not None and _finite(stamp) else None
        end_f = float(end) if _finite(end) and float(end) > 0 else None
        ref = stamp_f if stamp_f is not None else end_f if end_f is not None else self.latest_stamp
        if ref is None:
            self._warn("rejected_transcripts", "transcript %r has no usable time (stamp, end): dropped", text[:40])
            return
        self._latest["transcript"] = max(self._latest.get("transcript", ref), ref)
        self._last_transcript = ref if self._last_transcript is None else max(self._last_transcript, ref)
        self._stats["transcripts"] += 1
        if not is_final:
            self._stats["partial_transcripts"] += 1
            return
        if not text.strip():
            self._stats["empty_transcripts"] += 1
            return
        cfg = self.cfg
        if end_f is None:
            self._stats["unknown_end"] += 1
            end_f = ref
        start_f = float(start) if _finite(start) else None
        if start_f is not None and (start_f > end_f or (start_f <= 0 and end_f > cfg.max_window_s)
                                    or (end is None or not _finite(end) or float(end) <= 0)):
            start_f = None
        if start_f is None:
            self._stats["unknown_start"] += 1
            onset = self._vad.last_onset(end_f, cfg.max_window_s) if self._vad is not None else None
            start_f = onset if onset is not None else end_f - cfg.default_window_s
        if end_f - start_f > cfg.max_window_s:
            start_f = end_f - cfg.max_window_s
            self._stats["clipped_windows"] += 1
        if end_f - start_f < cfg.min_window_s:
            start_f = end_f - cfg.min_window_s
            self._stats["widened_windows"] += 1
        conf = float(confidence) if _finite(confidence) else float("nan")
        self._push(_Pending(start_f, end_f, text, "transcript", str(utterance_id), str(dialogue_id),
                            str(language), conf, self._seq))

    def _on_speech(self, start: float, end: float) -> None:
        if self._last_transcript is not None and end - self._last_transcript < self.cfg.stt_timeout_s:
            return
        self._vad_count += 1
        if end - start > self.cfg.max_window_s:
            start = end - self.cfg.max_window_s
            self._stats["clipped_windows"] += 1
        self._push(_Pending(start, end, None, "vad", f"vad{self._vad_count}", "", "", float("nan"), self._seq))

    def _push(self, p: _Pending) -> None:
        self._seq += 1
        self._pending.append(p)
        if len(self._pending) > self.cfg.max_pending:
            self._pending.sort(key=_Pending.key)
            dropped = self._pending.pop(0)
            self._warn("dropped_windows", "more than max_pending=%d windows pending: dropped '%s' "
                       "ending at %.3f s", self.cfg.max_pending, dropped.utterance_id, dropped.end)

    # ------------------------------------------------------------------ outputs
    def _build(self, p: _Pending, now: float) -> UtteranceWindow:
        frames = self._frames.query(p.start, p.end)
        audio = self._audio.query(grid_floor(p.start, self.cfg.audio_grid_s), p.end)
        self._stats["gaps"] += audio.gaps
        self._stats["windows"] += 1
        if p.closed_by == "vad":
            self._stats["vad_windows"] += 1
        return UtteranceWindow(
            start=p.start, end=p.end, transcript=p.transcript, frames=list(frames), audio=audio.samples,
            sample_rate=self.sample_rate, audio_start=audio.start, closed_by=p.closed_by,
            utterance_id=p.utterance_id, dialogue_id=p.dialogue_id, language=p.language,
            stt_confidence=p.confidence, closed_at=float(now))

    def poll(self, now: float) -> list[UtteranceWindow]:
        """Emit the windows with ``end + late_s <= now``.

        Args:
            now: current sensor time in seconds (the stamp of the message just
                added, or ``/clock``).

        Returns:
            Windows in ``(end, start, utterance_id, transcript)`` order, preceded
            by any windows finished by a time reset since the last poll.
        """
        out, self._ready = self._ready, []
        if not _finite(now) or not self._pending:
            return out
        now, late = float(now), self.cfg.late_s
        due = [p for p in self._pending if p.end + late <= now]
        if not due:
            return out
        self._pending = [p for p in self._pending if p.end + late > now]
        for p in sorted(due, key=_Pending.key):
            out.append(self._build(p, now))
            self._watermark = max(self._watermark, p.end)
        return out

    def flush(self) -> list[UtteranceWindow]:
        """Close everything pending (end of a bag, shutdown), including an open VAD segment.

        Returns:
            Windows in the same order as :meth:`poll`; ``closed_at`` is the newest stamp seen.
        """
        if self._vad is not None:
            for seg in self._vad.flush():
                self._on_speech(*seg)
        out, self._ready = self._ready, []
        now = self.latest_stamp
        for p in sorted(self._pending, key=_Pending.key):
            out.append(self._build(p, now if now is not None else p.end))
            self._watermark = max(self._watermark, p.end)
        self._pending = []
        return out
