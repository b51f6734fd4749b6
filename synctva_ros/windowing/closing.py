"""The window-closing policy: which transcripts and speech segments make windows, their bounds, the queue.

Rules 1, 2, 9 and 11 of :mod:`synctva_ros.windowing.windower`. :class:`WindowCloser` turns
final transcripts and voice-activity segments into pending windows; it knows times (seconds,
sensor time) and the windowing configuration, never the buffered data. Its parts:

* :func:`transcript_bounds`: ``[start, end]`` of a final transcript's window (unknown
  end -> the transcript's time; unknown start -> the last voice onset or ``end -
  default_window_s``; clipped to ``max_window_s``, widened to ``min_window_s``; never before 0);
* :func:`stt_silent`: whether a voice-activity segment may close a window (no transcript
  for ``stt_timeout_s``);
* :class:`PendingQueue`: windows waiting for ``end + late_s``, in the deterministic order
  ``(end, start, utterance_id, transcript, closed_by, seq)``, at most ``max_pending``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from synctva_ros.config import WindowingConfig
from synctva_ros.core.codecs import resample
from synctva_ros.windowing.clock import finite_time
from synctva_ros.windowing.counters import WindowerCounters
from synctva_ros.windowing.vad import VAD_SAMPLE_RATES, VoiceActivitySegmenter

__all__ = ["WindowCloser", "PendingWindow", "PendingQueue", "WindowBounds", "known_end", "transcript_bounds",
           "clip_to_max", "stt_silent"]


@dataclass
class PendingWindow:
    """A window whose bounds are known and whose data is still arriving (times in seconds).

    ``seq`` is set by :meth:`PendingQueue.push` (arrival order, the last sort key).
    """

    start: float
    end: float
    transcript: str | None
    closed_by: str
    utterance_id: str
    dialogue_id: str
    language: str
    confidence: float
    seq: int = 0
    speaker_id: str = ""

    def key(self) -> tuple:
        """Sort key: ``(end, start, utterance_id, transcript, closed_by, seq)``."""
        return (self.end, self.start, self.utterance_id, self.transcript or "", self.closed_by, self.seq)


@dataclass(frozen=True)
class WindowBounds:
    """``[start, end]`` of a transcript window (seconds) and which rule-2 corrections were applied."""

    start: float
    end: float
    unknown_end: bool = False
    unknown_start: bool = False
    clipped: bool = False
    widened: bool = False


def known_end(end: object) -> float | None:
    """A transcript's end time in seconds, or ``None`` when unknown (not finite, or ``<= 0``)."""
    return float(end) if finite_time(end) and float(end) > 0 else None  # type: ignore[arg-type]


def clip_to_max(start: float, end: float, max_window_s: float) -> tuple[float, bool]:
    """``(start, clipped)``: ``start`` moved to ``end - max_window_s`` when the window is longer."""
    if end - start > max_window_s:
        return end - max_window_s, True
    return start, False


def transcript_bounds(start: object, end: float | None, ref: float, cfg: WindowingConfig,
                      onset: Callable[[float, float], float | None] | None = None) -> WindowBounds:
    """Bounds of a final transcript's window (rule 2).

    Args:
        start: the transcript's start time (seconds; anything non-finite = unknown).
        end: :func:`known_end` of the transcript's end (seconds), ``None`` when unknown.
        ref: the transcript's time (its stamp, else its end, else the newest sensor time; seconds);
            replaces an unknown end.
        cfg: ``max_window_s``, ``min_window_s``, ``default_window_s``.
        onset: ``onset(before, within)`` -> the last voice-activity onset in ``[before - within,
            before]`` seconds or ``None`` (:meth:`~synctva_ros.windowing.vad.VoiceActivitySegmenter.last_onset`);
            ``None`` when the VAD does not run. Called only when the start is unknown.

    Returns:
        The bounds and the corrections applied (counted by the windower as ``unknown_end``,
        ``unknown_start``, ``clipped_windows``, ``widened_windows``).
    """
    unknown_end = end is None
    end_f = ref if end is None else end
    start_f = float(start) if finite_time(start) else None  # type: ignore[arg-type]
    if start_f is not None and (start_f > end_f or (start_f <= 0 and end_f > cfg.max_window_s) or unknown_end):
        start_f = None
    unknown_start = start_f is None
    if start_f is None:
        at = onset(end_f, cfg.max_window_s) if onset is not None else None
        start_f = at if at is not None else end_f - cfg.default_window_s
    start_f, clipped = clip_to_max(start_f, end_f, cfg.max_window_s)
    widened = end_f - start_f < cfg.min_window_s
    if widened:
        start_f = end_f - cfg.min_window_s
    start_f = max(start_f, min(0.0, end_f))  # ROS time has no negative seconds
    return WindowBounds(start_f, end_f, unknown_end, unknown_start, clipped, widened)


def stt_silent(segment_end: float, last_transcript: float | None, stt_timeout_s: float) -> bool:
    """Whether a speech segment ending at ``segment_end`` s may close a window (rule 9).

    True when no transcript was seen (``last_transcript`` is ``None``) or the newest one is at
    least ``stt_timeout_s`` seconds before the segment's end.
    """
    return last_transcript is None or not segment_end - last_transcript < stt_timeout_s


class PendingQueue:
    """Windows waiting for their late data, bounded (rule 11), emitted in :meth:`PendingWindow.key` order."""

    def __init__(self) -> None:
        self._items: list[PendingWindow] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Drop every pending window and restart the arrival numbering."""
        self._items = []
        self._seq = 0

    def push(self, p: PendingWindow, max_pending: int) -> PendingWindow | None:
        """Queue ``p`` (numbered in arrival order); beyond ``max_pending`` drop the first in key order.

        Returns:
            The dropped window, or ``None``.
        """
        p.seq = self._seq
        self._seq += 1
        self._items.append(p)
        if len(self._items) > max_pending:
            self._items.sort(key=PendingWindow.key)
            return self._items.pop(0)
        return None

    def pop_due(self, now: float, late_s: float) -> list[PendingWindow]:
        """Remove and return, in key order, the windows with ``end + late_s <= now`` (seconds)."""
        due = [p for p in self._items if p.end + late_s <= now]
        if due:
            self._items = [p for p in self._items if p.end + late_s > now]
        return sorted(due, key=PendingWindow.key)

    def drain(self) -> list[PendingWindow]:
        """Remove and return every pending window, in key order."""
        out = sorted(self._items, key=PendingWindow.key)
        self._items = []
        return out


class WindowCloser:
    """Pending windows from final transcripts (rules 1, 2) and from voice activity (rule 9).

    Args:
        cfg: the windowing configuration (read at every call, so later changes apply).
        counters: where ``transcripts``, ``partial_transcripts``, ``empty_transcripts``,
            ``unknown_end``, ``unknown_start``, ``clipped_windows``, ``widened_windows`` and
            ``dropped_windows`` are counted.
        sample_rate: rate (Hz) of the audio given to :meth:`on_audio`; the VAD runs at it when
            WebRTC accepts it, else at 16 kHz.

    Attributes:
        vad: the WebRTC VAD segmenter with ``cfg.vad_enabled``, else ``None``.
        queue: the pending windows.

    Raises:
        ValueError: ``vad_enabled`` with VAD settings WebRTC does not accept.
    """

    def __init__(self, cfg: WindowingConfig, counters: WindowerCounters, sample_rate: int = 16000) -> None:
        self.cfg = cfg
        self.counters = counters
        self.sample_rate = int(sample_rate)
        self._vad_rate = self.sample_rate if self.sample_rate in VAD_SAMPLE_RATES else 16000
        self.vad: VoiceActivitySegmenter | None = None
        if cfg.vad_enabled:
            self.vad = VoiceActivitySegmenter.from_config(cfg, self._vad_rate)
        self.queue = PendingQueue()
        self._vad_count = 0

    def __len__(self) -> int:
        return len(self.queue)

    def clear(self) -> None:
        """Forget the pending windows and the VAD's stream, restart the ``vad<n>`` numbering."""
        self.queue.clear()
        self._vad_count = 0
        if self.vad is not None:
            self.vad.reset()

    def on_audio(self, stamp: float, samples: np.ndarray, last_transcript: float | None) -> None:
        """Feed kept audio to the VAD (if any); speech segments it ends go to :meth:`on_speech`.

        Args:
            stamp: time of the first sample (seconds).
            samples: ``(S,)`` float32 mono at ``sample_rate`` Hz.
            last_transcript: newest transcript time (seconds), ``None`` when none since the last reset.
        """
        if self.vad is None:
            return
        v = samples if self._vad_rate == self.sample_rate else resample(samples, self.sample_rate, self._vad_rate)
        for start, end in self.vad.feed(stamp, v):
            self.on_speech(start, end, last_transcript)

    def flush(self, last_transcript: float | None) -> list[PendingWindow]:
        """Close the VAD's open segment (see :meth:`on_speech`), then remove and return every pending
        window in key order."""
        if self.vad is not None:
            for start, end in self.vad.flush():
                self.on_speech(start, end, last_transcript)
        return self.queue.drain()

    def on_transcript(self, text: str, start: object, end: float | None, ref: float, is_final: bool,
                      utterance_id: object, dialogue_id: object, language: object, confidence: object,
                      speaker_id: object = "") -> None:
        """A speech-to-text result with a usable time; a final, non-empty one queues a window.

        Args:
            text: recognised text.
            start: the transcript's start (seconds; non-finite = unknown).
            end: :func:`known_end` of its end (seconds, ``None`` = unknown).
            ref: its time (seconds), see :func:`transcript_bounds`.
            is_final: only final results make windows (rule 1).
            utterance_id, dialogue_id, language, speaker_id: copied to the window as strings.
            confidence: STT confidence in [0, 1], NaN when not finite.
        """
        self.counters.add("transcripts")
        if not is_final:
            self.counters.add("partial_transcripts")
            return
        if not text.strip():
            self.counters.add("empty_transcripts")
            return
        b = transcript_bounds(start, end, ref, self.cfg, self.vad.last_onset if self.vad is not None else None)
        for key, applied in (("unknown_end", b.unknown_end), ("unknown_start", b.unknown_start),
                             ("clipped_windows", b.clipped), ("widened_windows", b.widened)):
            self.counters.add(key, int(applied))
        conf = float(confidence) if finite_time(confidence) else float("nan")  # type: ignore[arg-type]
        self._push(PendingWindow(b.start, b.end, text, "transcript", str(utterance_id), str(dialogue_id),
                                 str(language), conf, speaker_id=str(speaker_id)))

    def on_speech(self, start: float, end: float, last_transcript: float | None) -> None:
        """A VAD speech segment ``[start, end]`` s: a window ``vad<n>`` when speech-to-text is silent.

        Args:
            start, end: the segment (seconds); clipped to its last ``max_window_s``.
            last_transcript: newest transcript time (seconds), ``None`` when none since the last reset.
        """
        if not stt_silent(end, last_transcript, self.cfg.stt_timeout_s):
            return
        self._vad_count += 1
        start, clipped = clip_to_max(start, end, self.cfg.max_window_s)
        self.counters.add("clipped_windows", int(clipped))
        self._push(PendingWindow(start, end, None, "vad", f"vad{self._vad_count}", "", "", float("nan")))

    def _push(self, p: PendingWindow) -> None:
        dropped = self.queue.push(p, self.cfg.max_pending)
        if dropped is not None:
            self.counters.warn("dropped_windows", "more than max_pending=%d windows pending: dropped '%s' "
                               "ending at %.3f s", self.cfg.max_pending, dropped.utterance_id, dropped.end)
