"""Stamps and transcript strings the windower does not trust (rules 12-14 of :mod:`.windower`).

* :func:`effective_stamp`: the one place of rule 12's "a 0 stamp is stamped on arrival", used by the
  windower, the offline bag reader and the node alike.
* :class:`StampGuard`: zero stamps (unknown: stamped on arrival), negative stamps (rejected),
  far-future stamps (rejected unless a sensor stream confirms a forward time jump) and, after
  time went back, the old timeline's stragglers (rejected), all counted; it also keeps a
  rejected stamp from closing windows through the ``poll`` its caller makes with it.
* :func:`clean_text`, :func:`bound_field`: control characters stripped from transcript text,
  identifier strings cut to :data:`MAX_FIELD_CHARS`.
* :class:`SeenUtterances`: final-transcript utterance ids already windowed (deduplication).

Rules of :mod:`.windower` implemented here (sensor time, seconds):

12. **Zero and negative stamps.** A stamp of 0 is unknown: given the caller's arrival
    time (``add_*(..., now=...)``) it becomes ``now`` (``zero_stamps``); without it a frame
    or audio stamp 0 is time 0 and a transcript's stamp 0 is unknown (rule 2's fallbacks).
    Negative stamps, starts or ends drop the message (``negative_stamps``). Windows never
    start before 0 (ROS time has no negative seconds).
13. **Far future.** The *stream time* T is the newest camera or audio stamp since the last
    reset. Before any camera/audio data there is none: the first one sets T (a far-future
    first one is caught by rule 6 at the next one), and transcripts are not checked
    (text-only input). A frame, audio chunk or transcript (stamp or end) beyond T +
    ``future_tolerance_s`` is dropped (``future_frames`` / ``future_audio`` /
    ``future_transcripts``) and moves no clock; a ``poll`` with its stamp polls at T.
    :data:`~.stamps.FUTURE_CONFIRM` consecutive far-future stamps of one sensor stream
    within the tolerance of the first are a forward time jump: a reset as in rule 6.
13b. **One time jump, one reset.** After a reset because a sensor stream went back (rule 6)
    from the stream time O, the other streams may still deliver messages of the old timeline
    (a looped bag: the old loop's last frames or audio chunks, queued behind the new loop's
    first message). Until a sensor stream delivers a stamp that is not such a straggler, its
    stamps in (T + ``time_reset_s``, O + ``time_reset_s``] (T: the new stream time) are
    dropped (``stale_frames`` / ``stale_audio``), move no clock and never count towards a
    forward jump; a transcript in that range nearer O than T is dropped too
    (``stale_transcripts``) until T reaches O. Accepted, such a stamp would make the
    stream's next message go back by more than ``time_reset_s`` (a second reset) or, ahead
    by more than ``future_tolerance_s``, confirm a forward jump (a second and third one),
    whatever the loop length; stamps up to ``time_reset_s`` ahead of T are accepted, as
    their stream's next message cannot reset. So one restart is one reset, across
    modalities.
14. **Transcript strings.** Control characters are stripped from the text
    (``control_chars``); identifiers are cut to 256 characters (``truncated_fields``); a
    final transcript whose non-empty ``utterance_id`` already made a window since the
    last reset is dropped (``duplicate_transcripts``, the first one wins).

Times are sensor time in seconds (REP-103). Nothing here raises on data.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict

from synctva_ros.config import WindowingConfig
from synctva_ros.windowing.clock import finite_time
from synctva_ros.windowing.closing import known_end
from synctva_ros.windowing.counters import WindowerCounters

__all__ = ["effective_stamp", "StampGuard", "clean_transcript", "FUTURE_CONFIRM", "FUTURE_KEYS", "STALE_KEYS",
           "MAX_FIELD_CHARS", "MAX_SEEN_UTTERANCES", "clean_text", "bound_field", "SeenUtterances"]

#: Consecutive far-future stamps on one sensor stream, each within ``future_tolerance_s`` of the
#: first, that make a forward time jump (a robot's drivers restarted later, a bag with a gap).
FUTURE_CONFIRM = 3
#: Counter of rejected far-future stamps per stream.
FUTURE_KEYS = {"frame": "future_frames", "audio": "future_audio", "transcript": "future_transcripts"}
#: Counter of rejected stragglers of the timeline before a backward reset (rule 13b), per stream.
STALE_KEYS = {"frame": "stale_frames", "audio": "stale_audio", "transcript": "stale_transcripts"}
#: Longest identifier copied into a window (``utterance_id``, ``dialogue_id``, ``speaker_id``,
#: ``language``), in characters.
MAX_FIELD_CHARS = 256
#: Final-transcript utterance ids remembered for deduplication (the oldest are forgotten first).
MAX_SEEN_UTTERANCES = 4096

log = logging.getLogger("synctva_ros.windowing")
_WHITESPACE_CONTROLS = re.compile(r"[\t\n\r\v\f]")
# C0 and C1 control characters (Unicode category Cc), NUL included
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def effective_stamp(stamp_s: float, arrival_s: float | None) -> float:
    """A message's time: its header stamp, or its arrival time when the stamp is 0 (rule 12).

    A header stamp of exactly 0 means unknown: camera and microphone drivers that leave the header unset
    publish 0 and expect the receiver to stamp the message on arrival, so the node uses its clock's time when
    the message arrived and the offline reader the bag's log time (when the replayed message reached the
    node). Every other stamp is the message's own: a negative one is not corrected here but rejected by
    :meth:`StampGuard.resolve` (counted ``negative_stamps``), and a non-finite one is left to the caller's
    checks. This is the only place the rule is written; the windower, :mod:`synctva_ros.bags.reader` and
    the node's :mod:`synctva_ros.ros.window_feed` call it.

    Args:
        stamp_s: the header stamp, seconds (sensor time).
        arrival_s: the arrival time on the same clock, seconds; ``None`` when the caller has none (a 0
            stamp then stays time 0).

    Returns:
        ``arrival_s`` (as a float) when ``stamp_s == 0`` and ``arrival_s`` is given, else ``stamp_s``. Raises
        nothing.
    """
    if stamp_s == 0 and arrival_s is not None:
        return float(arrival_s)
    return stamp_s


def clean_text(text: str) -> tuple[str, bool]:
    """``(text, changed)``: tabs and line breaks become spaces, other control characters (NUL, ESC,
    C1) are removed (ROS string fields end at a NUL in the C layers)."""
    out = _CONTROLS.sub("", _WHITESPACE_CONTROLS.sub(" ", text))
    return out, out != text


def bound_field(value: object, limit: int = MAX_FIELD_CHARS) -> tuple[str, bool]:
    """``(string, cut)``: ``str(value)`` without control characters, cut to ``limit`` characters."""
    s = str(value)
    too_long = len(s) > 4 * limit
    if too_long:  # do not scan a megabyte for control characters
        s = s[:4 * limit]
    s = _CONTROLS.sub("", s)
    return s[:limit], too_long or len(s) > limit


def clean_transcript(counters: WindowerCounters, text: str, **fields: object) -> tuple[str, dict[str, str]]:
    """Rule 14's strings: ``(text, fields)`` with :func:`clean_text` and :func:`bound_field` applied.

    Args:
        counters: ``control_chars`` (text changed) and ``truncated_fields`` (a field cut) are
            counted and logged there.
        text: the transcript text.
        fields: identifier strings (``utterance_id=...``); any value is turned into a string.

    Returns:
        The cleaned text and the fields as bounded strings, same keys.
    """
    text, changed = clean_text(text)
    if changed:
        counters.warn("control_chars", "control characters removed from transcript %r", text[:40])
    out = {}
    for name, value in fields.items():
        out[name], cut = bound_field(value)
        if cut:
            counters.warn("truncated_fields", "transcript %s %r... cut to %d characters", name, out[name][:40],
                          MAX_FIELD_CHARS)
    return text, out


class SeenUtterances:
    """Utterance ids of the final transcripts already windowed since the last reset (bounded)."""

    def __init__(self, limit: int = MAX_SEEN_UTTERANCES) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = int(limit)

    def clear(self) -> None:
        """Forget every id (a windower reset)."""
        self._ids.clear()

    def seen(self, utterance_id: str) -> bool:
        """Whether ``utterance_id`` (non-empty) was already given; records it otherwise.

        Empty ids are never duplicates (speech-to-text without ids).
        """
        if not utterance_id:
            return False
        if utterance_id in self._ids:
            return True
        self._ids[utterance_id] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return False


class StampGuard:
    """Rules 12, 13 and 13b of :mod:`.windower` for one windower.

    Args:
        cfg: ``future_tolerance_s`` and ``time_reset_s`` (read at every call).
        counters: where ``zero_stamps``, ``negative_stamps``, ``future_*`` and ``stale_*`` are counted.
    """

    def __init__(self, cfg: WindowingConfig, counters: WindowerCounters) -> None:
        self.cfg = cfg
        self.counters = counters
        self._jump: dict[str, tuple[float, int]] = {}
        self._rejected: float | None = None
        self._old: float | None = None  # stream time before the last backward reset (rule 13b)
        self._behind: set[str] = set()  # sensor streams that may still deliver the old timeline

    def clear(self) -> None:
        """Forget forward-jump candidates, the last rejected stamp and the old timeline (a windower reset)."""
        self._jump = {}
        self._rejected = None
        self._old = None
        self._behind = set()

    def old_timeline(self, old: float, behind: set[str]) -> None:
        """Rule 13b: the windower was just reset because a sensor stream went back from stream time ``old``.

        Args:
            old: the newest camera/audio stamp before the reset (seconds).
            behind: the other sensor streams seen before the reset (``frame``, ``audio``): their
                next stamps may still be the old timeline's.
        """
        self._old = float(old)
        self._behind = set(behind)

    def _stale(self, stream: str, t: float, ref: float) -> bool:
        """Rule 13b: whether ``t`` (seconds) on ``stream`` is a straggler of the old timeline (counted, logged)."""
        old = self._old
        if old is None:
            return False
        if ref >= old:  # the new timeline has caught up: no stamp can be the old one's any more
            self._old, self._behind = None, set()
            return False
        rs = self.cfg.time_reset_s
        if stream == "transcript":
            stale = ref + rs < t <= old + rs and t - ref > old - t
        elif stream in self._behind:
            stale = ref + rs < t <= old + rs
            if not stale:
                self._behind.discard(stream)  # this stream is on the new timeline now
        else:
            return False
        if stale:
            self.counters.warn(STALE_KEYS[stream], "%s stamped %.3f s is from before sensor time went back "
                               "(stream time %.3f s, before %.3f s): not used in the new timeline", stream, t, ref, old)
            self._rejected = t
        return stale

    def resolve(self, stream: str, stamp: float, now: float | None) -> float | None:
        """A frame's or audio chunk's stamp (seconds) after rule 12.

        Args:
            stream: ``frame`` or ``audio`` (for the log).
            stamp: its finite stamp.
            now: the caller's arrival time (seconds, same clock), if it has one.

        Returns:
            ``stamp``; ``now`` for a 0 stamp when ``now`` is given (0 without ``now`` stays time 0);
            ``None`` for a negative stamp (counted ``negative_stamps``, logged).
        """
        if stamp < 0:
            self.counters.warn("negative_stamps", "%s with negative stamp %.3f s dropped", stream, stamp)
            self._rejected = stamp
            return None
        if stamp == 0 and now is not None:
            self.counters.add("zero_stamps")
        return effective_stamp(stamp, now)

    def future(self, stream: str, t: float, ref: float | None) -> str:
        """Whether stamp ``t`` (seconds) is ahead of the stream time ``ref`` by more than the tolerance.

        Args:
            stream: ``frame``, ``audio`` or ``transcript``.
            t: the stamp.
            ref: the newest camera/audio stamp since the last reset (``None``: no reference yet,
                anything is accepted).

        Returns:
            ``"ok"``; ``"stale"`` for a straggler of the timeline before a backward reset (rule
            13b, counted ``stale_<stream>``; not used in the new timeline, rule 13c); ``"jump"`` when this is the
            :data:`FUTURE_CONFIRM`-th consecutive far-future stamp of a sensor stream within
            ``future_tolerance_s`` of the first (the caller resets); ``"reject"`` for other far-future stamps (counted
            ``future_<stream>``, logged).
        """
        tol = self.cfg.future_tolerance_s
        if ref is not None and self._stale(stream, t, ref):
            return "stale"
        if ref is None or t <= ref + tol:
            self._jump.pop(stream, None)
            return "ok"
        if stream != "transcript":
            first, n = self._jump.get(stream, (t, 0))
            first, n = (first, n + 1) if first <= t <= first + tol else (t, 1)
            if n >= FUTURE_CONFIRM:
                self._jump.pop(stream, None)
                log.warning("sensor time of %s jumped forward from %.3f to %.3f s: resetting the windower",
                            stream, ref, t)
                return "jump"
            self._jump[stream] = (first, n)
        self.counters.warn(FUTURE_KEYS[stream], "%s stamped %.3f s, %.3f s ahead of the stream time %.3f s "
                           "(> future_tolerance_s=%.3f): dropped", stream, t, t - ref, ref, tol)
        self._rejected = t
        return "reject"

    def transcript_stamp(self, stamp: object, start: object, end: object,
                         now: float | None) -> tuple[bool, float | None]:
        """Rule 12 for a transcript: ``(usable, stamp)`` in seconds.

        Args:
            stamp, start, end: its times (seconds; ``None`` or non-finite = unknown).
            now: the caller's arrival time (seconds), if any.

        Returns:
            ``(False, None)`` when a time is negative (counted ``negative_stamps``, logged); else
            ``(True, s)`` with ``s`` the stamp when positive, ``now`` when the stamp is 0 or
            unknown and ``now`` is given (a 0 stamp counted ``zero_stamps``), else ``None``.
        """
        times = [float(t) for t in (stamp, start, end) if t is not None and finite_time(t)]  # type: ignore
        if times and min(times) < 0:
            self.counters.warn("negative_stamps", "transcript with negative time %.3f s dropped", min(times))
            self._rejected = float(stamp) if stamp is not None and finite_time(stamp) else min(times)  # type: ignore
            return False, None
        s = float(stamp) if stamp is not None and finite_time(stamp) else None  # type: ignore[arg-type]
        self.counters.add("zero_stamps", int(s == 0))
        if s is not None and s > 0:
            return True, s
        return True, float(now) if now is not None and finite_time(now) else None

    def transcript_times(self, text: object, stamp: object, start: object, end: object, now: float | None,
                         latest: float | None) -> tuple[float, float | None] | None:
        """Rules 7, 12 for a transcript: ``(ref, end)`` in seconds, ``None`` when it is dropped (counted, logged).

        ``end`` is :func:`~.closing.known_end` of ``end`` (``None``: unknown); ``ref``, the transcript's time,
        is its stamp (:meth:`transcript_stamp`), else its end, else ``latest`` (the newest sensor time). Dropped:
        text that is not ``str`` or no usable time (``rejected_transcripts``), a negative time.
        """
        if not isinstance(text, str):
            self.counters.warn("rejected_transcripts", "transcript text is %s, not str: dropped", type(text).__name__)
            return None
        usable, stamp_f = self.transcript_stamp(stamp, start, end, now)
        if not usable:
            return None
        end_f = known_end(end)
        ref = stamp_f if stamp_f is not None else end_f if end_f is not None else latest
        if ref is None:
            self.counters.warn("rejected_transcripts", "transcript %r has no usable time (stamp, end): dropped",
                               text[:40])
            return None
        return ref, end_f

    def poll_time(self, now: float, ref: float | None) -> float:
        """``now`` for ``poll``; the stream time ``ref`` when ``now`` is the stamp just rejected.

        The caller polls with the stamp of each message it added (rule 3); a rejected stamp must
        not close windows the stream time has not reached (seconds).
        """
        if self._rejected is not None and now == self._rejected:
            self._rejected = None
            if ref is not None:
                return min(now, ref)
        return now
