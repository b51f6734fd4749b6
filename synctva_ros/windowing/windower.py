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
   max_window_s``) becomes the last voice onset within ``max_window_s`` before
   ``end`` when the VAD runs, else ``end - default_window_s``. Windows are
   clipped to their last ``max_window_s`` (``clipped_windows``) and widened
   backwards to ``min_window_s`` (``widened_windows``).
3. **Emission.** A window is emitted by the first ``poll(now)`` with ``end +
   late_s <= t``: ``now`` lowered to each lagging camera/audio stream's time
   (waited for up to ``stream_wait_s``, unless idle for ``late_s``, or twice its recent delivery delay: rule 3
   of :meth:`.clock.SensorClock.closing_time`), with the frames in ``[start, end]`` and the audio
   in ``[g, end]`` buffered then; ``g`` is ``start`` rounded down to a multiple
   of ``audio_grid_s`` (the 10 ms grid of the streaming openSMILE cache,
   :mod:`synctva_ros.streaming`; ``audio_start`` is the first sample's time).
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
10. **Feature streaming.** An optional *sink* (:class:`~synctva_ros.windowing.sink.StreamSink`)
    is given every frame and audio chunk the windower keeps (after thinning,
    duplicate and late checks and resampling) and each final transcript it queues
    a window for (its text stage can start then), and is reset with the windower.
11. **Bounds on memory.** Frame and audio buffers keep ``buffer_s`` seconds
    (frames also at most ``max_frames``); at most ``max_pending`` windows wait
    (the earliest-ending is dropped beyond that, ``dropped_windows``).
12-14. **Stamps and strings** (:mod:`~synctva_ros.windowing.stamps`): a 0 stamp is unknown
    (the caller's ``now`` when given, for the ``frame_keep_hz`` thinning too), negative times drop
    the message; the stream time is the newest camera/audio stamp, and anything beyond it by
    ``future_tolerance_s`` is dropped and moves no clock; after time went back, the old
    timeline's stragglers are dropped (one time jump, one reset) but its late final transcripts still make
    windows for ``straggler_s`` (13c, :mod:`.old_timeline`); transcript text loses control
    characters, identifiers are bounded, a repeated final ``utterance_id`` makes no second window.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np

from synctva_ros.config import WindowingConfig
from synctva_ros.core.codecs import resample
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.windowing.buffers import AudioBuffer, FrameBuffer, grid_floor
from synctva_ros.windowing.clock import SensorClock, finite_time
from synctva_ros.windowing.closing import PendingWindow, WindowCloser
from synctva_ros.windowing.counters import STAT_KEYS, WindowerCounters
from synctva_ros.windowing.inputs import FrameThinning, RejectedInput, accept_audio, accept_frame
from synctva_ros.windowing.old_timeline import OldTimeline
from synctva_ros.windowing.sink import StreamSink
from synctva_ros.windowing.stamps import SeenUtterances, StampGuard, clean_transcript

__all__ = ["UtteranceWindower", "StreamSink", "STAT_KEYS"]

log = logging.getLogger("synctva_ros.windowing")


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
        self._stats = WindowerCounters()
        self._closer = WindowCloser(self.cfg, self._stats, self.sample_rate)
        self._frames = FrameBuffer(self.cfg.buffer_s, self.cfg.max_frames)
        self._audio = AudioBuffer(self.cfg.buffer_s, self.sample_rate)
        self._clock = SensorClock()
        self._guard = StampGuard(self.cfg, self._stats)
        self._seen = SeenUtterances()
        self._old = OldTimeline()  # rule 13c
        self._ready: list[UtteranceWindow] = []
        self.session = -1  #: 0, 1, ...: +1 at every reset (time resets too); copied into each window
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, clear_stats: bool = False) -> None:
        """Forget all buffered data, pending windows and time history (counters kept unless ``clear_stats``);
        windows built from now on carry the next :attr:`session`."""
        self.session += 1
        self._frames.clear()
        self._audio.clear()
        self._closer.clear()
        self._clock.clear()
        self._guard.clear()
        self._seen.clear()
        self._old.clear()
        self._ready = []
        self._watermark = -math.inf
        self._thinning = FrameThinning()
        if self.sink is not None:
            self.sink.reset()
        if clear_stats:
            self._stats.clear()

    def set_sink(self, sink: StreamSink | None) -> None:
        """Hand kept frames and audio to ``sink`` from now on (``None``: to nobody); resets the sink."""
        self.sink = sink
        if sink is not None:
            sink.reset()

    def count(self, key: str) -> int:
        """One counter of :data:`STAT_KEYS` (cheaper than :attr:`stats`, which copies them all)."""
        held = self._frames.evicted if key == "evicted_frames" else self._audio.evicted if key == "evicted_audio" else 0
        return self._stats[key] + held

    @property
    def stats(self) -> dict[str, int]:
        """Counters (see :data:`STAT_KEYS`), a copy."""
        return {k: self.count(k) for k in STAT_KEYS}

    @property
    def latest_stamp(self) -> float | None:
        """Newest sensor time seen on any stream since the last reset (seconds), or ``None``."""
        return self._clock.latest

    @property
    def pending(self) -> int:
        """Windows waiting for ``end + late_s``."""
        return len(self._closer)

    @property
    def buffered_frames(self) -> int:
        """Frames held in the frame buffer."""
        return len(self._frames)

    @property
    def buffered_audio_s(self) -> float:
        """Seconds of audio samples held in the audio buffer."""
        return self._audio.total_samples / self.sample_rate

    def _time_reset(self, t: float, hold: bool = False) -> None:
        """Rules 6, 13 (13c with ``hold``): build the pending windows from the buffers, reset to time ``t`` (s)."""
        self._stats.add("time_resets")
        closed_at = self.latest_stamp or t
        ready = self._ready + [self._build(p, closed_at) for p in self._closer.queue.drain()]
        self._stats.add("evicted_frames", self._frames.evicted)
        self._stats.add("evicted_audio", self._audio.evicted)
        self._frames.evicted = self._audio.evicted = 0
        old = (self._frames, self._audio, self.session, self._clock.sensor_latest)
        if hold:  # rule 13c: the old buffers are held for stragglers, the new timeline gets empty ones
            self._frames, self._audio = self._frames.empty_like(), self._audio.empty_like()
        self.reset()
        if hold:
            self._old.hold(*old, new_time=t, hold_s=self.cfg.straggler_s)
        self._ready = ready

    def _admit(self, stream: str, t: float, now: float | None, straggler: Callable[[float], bool]) -> float | None:
        """Rules 12, 13 for a stamp ``t`` (s): the stamp to use, ``None`` when dropped (a straggler: rule 13c)."""
        t_ok = self._guard.resolve(stream, t, now)
        if t_ok is None:
            return None
        verdict = self._guard.future(stream, t_ok, self._clock.sensor_latest)
        if verdict == "jump":  # logged by the guard
            self._time_reset(t_ok)
        if verdict == "stale" and self._old.live(self._clock.sensor_latest):
            straggler(t_ok)
        return None if verdict in ("reject", "stale") else t_ok

    def _check_time(self, stream: str, t: float, now: float | None) -> None:
        """Rules 6, 13b: reset on a stream going back by ``time_reset_s``; record ``t`` and its arrival ``now``."""
        clock = self._clock
        if clock.went_back(stream, t, self.cfg.time_reset_s):
            log.warning("sensor time of %s went back from %.3f to %.3f s (> time_reset_s=%.3f): "
                        "resetting the windower", stream, clock.last(stream), t, self.cfg.time_reset_s)
            old = clock.sensor_latest
            behind = {s for s in ("frame", "audio") if s != stream and clock.last(s) is not None}
            self._time_reset(t, hold=True)
            self._guard.old_timeline(old, behind)  # type: ignore[arg-type]  # went_back: not None
        clock.advance(stream, t, now, self.cfg.late_s)

    # ------------------------------------------------------------------ inputs
    def wants_frame(self, stamp: float) -> bool:
        """Whether a frame stamped ``stamp`` (s) would be kept by the ``frame_keep_hz`` thinning."""
        return self._thinning.wants(stamp, self.cfg.frame_keep_hz)

    def thin_frame(self, stamp: float, now: float | None = None) -> bool:
        """Count and skip a frame the ``frame_keep_hz`` thinning would drop, before it is decoded; :meth:`add_frame`
        agrees. Args and returns: :meth:`.inputs.FrameThinning.thin` (``stamp``, ``now`` as for ``add_frame``)."""
        return self._thinning.thin(stamp, now, self.cfg.frame_keep_hz, self._stats)

    def add_frame(self, stamp: float, image: np.ndarray, now: float | None = None) -> None:
        """Buffer one camera frame.

        Args:
            stamp: sensor time in seconds (0 = unknown, rule 12).
            image: ``(H, W, 3)`` uint8 RGB.
            now: the caller's arrival time (seconds), replaces a 0 stamp.
        """
        if self.thin_frame(stamp, now):
            return
        try:
            stamp, image = accept_frame(stamp, image)
        except RejectedInput as e:
            self._stats.warn("rejected_frames", *e.log_args)
            return
        admitted = self._admit("frame", stamp, now, lambda t: self._old.add_frame(t, np.ascontiguousarray(image)))
        if admitted is None:
            return
        stamp = admitted
        self._check_time("frame", stamp, now)
        if stamp < self._watermark:
            self._stats.warn("late_frames", "frame at %.3f s is older than an emitted window (ends %.3f s): "
                             "dropped", stamp, self._watermark)
            return
        image = np.ascontiguousarray(image)
        if self._stats.kept(self._frames.insert(TimedFrame(stamp, image)), "frame", "late_frames", "frames", stamp):
            self._thinning.kept(stamp)
            if self.sink is not None:
                self.sink.on_frame(stamp, image)

    def add_audio(self, stamp: float, samples: np.ndarray, sample_rate: int, now: float | None = None) -> None:
        """Buffer one chunk of microphone audio (and feed the VAD).

        Args:
            stamp: sensor time of the first sample (seconds; 0 = unknown, rule 12).
            samples: ``(S,)`` float32 mono in [-1, 1]; an ``(S, 1)`` array is accepted.
            sample_rate: Hz; resampled to the windower's rate when different.
            now: the caller's arrival time (seconds), replaces a 0 stamp.
        """
        try:
            stamp, x, sr = accept_audio(stamp, samples, sample_rate)
        except RejectedInput as e:
            self._stats.warn("rejected_audio", *e.log_args)
            return
        admitted = self._admit("audio", stamp, now, lambda t: self._old.add_audio(
            t, x if sr == self.sample_rate else resample(x, sr, self.sample_rate))) if x.size else None
        if admitted is None:
            return
        stamp = admitted
        if sr != self.sample_rate:
            x = resample(x, sr, self.sample_rate)
            self._stats.add("resampled_audio")
        self._check_time("audio", stamp, now)
        end = stamp + x.size / self.sample_rate
        if end <= self._watermark:
            self._stats.warn("late_audio", "audio chunk at %.3f s ends before an emitted window (%.3f s): "
                             "dropped", stamp, self._watermark)
            return
        if not self._stats.kept(self._audio.insert(stamp, x), "audio chunk", "late_audio", "audio_chunks", stamp):
            return
        if self.sink is not None:
            self.sink.on_audio(stamp, x, self.sample_rate)
        self._closer.on_audio(stamp, x, self._clock.last("transcript"))

    def add_transcript(self, text: str, start: float, end: float, is_final: bool,
                       stamp: float | None = None, utterance_id: str = "", dialogue_id: str = "",
                       language: str = "", confidence: float = float("nan"), speaker_id: str = "",
                       now: float | None = None) -> None:
        """Register a speech-to-text result; a final one opens a pending window (rules 1, 2, 12-14).

        Args:
            text: recognised text (control characters are stripped).
            start, end: utterance bounds in sensor time (seconds); 0 = unknown, negative = dropped.
            is_final: only final results make windows.
            stamp: sensor time the result was produced (seconds), if known (0 = unknown).
            utterance_id, dialogue_id, language, confidence, speaker_id: copied to the window
                (strings cut to 256 characters).
            now: the caller's arrival time (seconds), replaces an unknown stamp.
        """
        times = self._guard.transcript_times(text, stamp, start, end, now, self.latest_stamp)
        if times is None:
            return
        ref, end_f = times
        text, ids = clean_transcript(self._stats, text, utterance_id=utterance_id, dialogue_id=dialogue_id,
                                     language=language, speaker_id=speaker_id)
        for t in sorted({ref, end_f} - {None}):  # type: ignore[type-var]
            verdict = self._guard.future("transcript", t, self._clock.sensor_latest)
            if verdict == "stale" and is_final and self._watermark == -math.inf:  # rule 13c, in session order
                p = self._old.straggler(text, start, end_f, ref, ids, confidence, self.cfg, self._clock.sensor_latest)
                if p is not None:
                    self._ready.append(self._build(p, self._old.newest, self._old))
                    self._stats.add("straggler_windows")
            if verdict != "ok":
                return
        self._clock.advance("transcript", ref, now, self.cfg.late_s)
        if is_final and text.strip() and self._seen.seen(ids["utterance_id"]):
            self._stats.warn("duplicate_transcripts", "final transcript %r repeats utterance_id %r: dropped",
                             text[:40], ids["utterance_id"][:40])
            return
        self._closer.on_transcript(text, start, end_f, ref, is_final, ids["utterance_id"], ids["dialogue_id"],
                                   ids["language"], confidence, ids["speaker_id"])
        if is_final and text.strip() and hasattr(self.sink, "on_transcript"):  # rule 10: text stage ahead
            self.sink.on_transcript(UtteranceWindow(  # type: ignore[union-attr]
                start=ref, end=ref if end_f is None else end_f, transcript=text, session=self.session, **ids))

    # ------------------------------------------------------------------ outputs
    def _build(self, p: PendingWindow, now: float, old: OldTimeline | None = None) -> UtteranceWindow:
        """The window of ``p`` from the buffers (``old``: the old timeline's held ones, its session)."""
        buffers = (old.frames, old.audio) if old is not None else (self._frames, self._audio)
        frames = buffers[0].query(p.start, p.end)  # type: ignore[union-attr]
        audio = buffers[1].query(grid_floor(p.start, self.cfg.audio_grid_s), p.end)  # type: ignore[union-attr]
        self._stats.add("gaps", audio.gaps)
        self._stats.add("windows")
        if p.closed_by == "vad":
            self._stats.add("vad_windows")
        return UtteranceWindow(
            start=p.start, end=p.end, transcript=p.transcript, frames=list(frames), audio=audio.samples,
            sample_rate=self.sample_rate, audio_start=audio.start, closed_by=p.closed_by,
            utterance_id=p.utterance_id, dialogue_id=p.dialogue_id, speaker_id=p.speaker_id, language=p.language,
            session=old.session if old is not None else self.session,
            stt_confidence=p.confidence, closed_at=float(now))

    def poll(self, now: float, arrival: float | None = None) -> list[UtteranceWindow]:
        """Emit the windows with ``end + late_s <= t``, ``t`` = ``now`` or a lagging sensor stream's time (rule 3).

        Args:
            now: current sensor time in seconds (the stamp of the message just
                added, or ``/clock``).
            arrival: the poll's time in the caller's clock (node clock, log time; s), for rule 3.

        Returns:
            Windows in ``(end, start, utterance_id, transcript)`` order, preceded
            by any windows finished by a time reset since the last poll.
        """
        out, self._ready = self._ready, []
        self._old.live(self._clock.sensor_latest)  # rule 13c: let the old buffers go once straggler_s passed
        if not finite_time(now) or not self._closer:
            return out
        now = self._guard.poll_time(float(now), self._clock.sensor_latest)
        due = self._clock.closing_time(now, self.cfg.stream_wait_s, self.cfg.late_s, arrival)  # rule 3
        for p in self._closer.queue.pop_due(due, self.cfg.late_s):
            out.append(self._build(p, float(now)))
            self._watermark = max(self._watermark, p.end)
        return out

    def flush(self) -> list[UtteranceWindow]:
        """Close everything pending (end of a bag, shutdown), including an open VAD segment.

        Returns:
            Windows in the same order as :meth:`poll`; ``closed_at`` is the newest stamp seen.
        """
        pending = self._closer.flush(self._clock.last("transcript"))
        out, self._ready = self._ready, []
        now = self.latest_stamp
        for p in pending:
            out.append(self._build(p, now if now is not None else p.end))
            self._watermark = max(self._watermark, p.end)
        return out
