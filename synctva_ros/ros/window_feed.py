"""Drive the utterance windower from live messages exactly as the offline bag reader does (ROS-free).

Each message's data is added to the
:class:`~synctva_ros.windowing.windower.UtteranceWindower`, which is then polled with
``now`` = the message stamp (sensor time, seconds; the arrival time for a 0 stamp), as
:func:`synctva_ros.bags.reader.windows_from_bag` does, so live topics and a bag read
offline give the same windows. Closed windows are counted (``windows``) and handed
to a sink (the inference worker). The windower handles order, duplicates and time
resets itself (its stats are ``windower.*`` in ``/diagnostics``; windows after a time
reset carry the next session, which resets the pipeline's dialogue context); this adds a
throttled warning for the counters the windower does not log. One lock serialises every windower
call, so message callbacks and the node-clock poll timer may run on any threads.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from synctva_ros.ros.counters import Counters
from synctva_ros.windowing.stamps import effective_stamp
from synctva_ros.windowing.windower import UtteranceWindower

__all__ = ["SILENT_WINDOWER_COUNTERS", "WindowFeed"]

#: Windower counters it does not log itself; a throttled warning when they move.
SILENT_WINDOWER_COUNTERS = {
    "out_of_order": "stamp older than the previous message of the stream (inserted in order)",
}
#: Windower counters compared before/after each message.
_WATCHED = tuple(SILENT_WINDOWER_COUNTERS)


class WindowFeed:
    """Messages in, closed utterance windows out, under one lock.

    Args:
        windower: the windower (its ``count``, ``thin_frame``, ``poll``, ``flush``).
        counters: ``<stream>_in`` per message added, ``windows`` per closed window,
            rejections (``bad_<stream>``, ``windower_errors``) and throttled warnings.
        submit: receives every closed window (e.g. :meth:`InferenceWorker.submit`); a time reset
            needs no call here: the windows after it carry the next windower session.
    """

    def __init__(self, windower: UtteranceWindower, counters: Counters, submit: Callable[[Any], None]) -> None:
        self.windower = windower
        self._counters = counters
        self._submit = submit
        self._lock = threading.RLock()

    def add(self, stream: str, stamp: float, add: Callable[[UtteranceWindower], Any],
            arrival: float | None = None) -> None:
        """``add(windower)`` one message's data, then poll with ``now`` = the message's time.

        The message's time is :func:`~synctva_ros.windowing.stamps.effective_stamp`: ``stamp``, or
        ``arrival`` when ``stamp`` is 0 (unknown), as the windower stamps such a message (give ``add`` the
        same ``arrival`` as ``now=``).

        Raises:
            Exception: what ``add`` raises other than ``ValueError`` (that one is counted ``bad_<stream>``); a
            failing poll is counted ``windower_errors``, not raised.

        Args:
            stream: ``image``, ``audio`` or ``transcript`` (counter names ``<stream>_in``, ``bad_<stream>``).
            stamp: the message's header stamp (sensor time), seconds; 0 = unknown.
            add: puts the data into the windower (``lambda w: w.add_audio(stamp, samples, rate, now=arrival)``).
            arrival: when the message arrived (the node clock), seconds; None: the stamp is used as it is.
        """
        stamp = effective_stamp(stamp, arrival)
        with self._lock:
            w = self.windower
            before = {key: w.count(key) for key in _WATCHED}
            try:
                add(w)
            except ValueError as exc:  # the windower does not raise for bad data; be safe anyway
                self._counters.reject(f"bad_{stream}", f"{stream} rejected by the windower: {exc}")
                return
            self._counters.count(f"{stream}_in")
            for key, what in SILENT_WINDOWER_COUNTERS.items():
                n = w.count(key)
                if n > before[key]:
                    self._counters.warn_throttled(f"windower.{key}", f"{stream} at {stamp:.3f} s: {what} "
                                                                     f"[windower.{key}: {n} so far]")
            self._poll_locked(stamp, arrival)

    def thin_frame(self, stamp: float, now: float | None = None) -> bool:
        """Whether the windower's thinning (``windowing.frame_keep_hz``) drops a camera frame at ``stamp``.

        A dropped frame is counted (``image_in`` here, ``thinned_frames`` by the windower)
        and polled for, so the caller need not decode its pixels. A 0 stamp (unknown) is
        thinned, and polled, at ``now`` (the arrival time, seconds) when given, as the windower
        stamps such a frame on arrival (:func:`~synctva_ros.windowing.stamps.effective_stamp`).
        """
        with self._lock:
            if not self.windower.thin_frame(stamp, now):
                return False
            self._counters.count("image_in")
            self._poll_locked(effective_stamp(stamp, now), now)
            return True

    def poll(self, now: float) -> None:
        """Close the windows due at ``now`` (seconds, the node clock: also the poll's arrival time)."""
        with self._lock:
            self._poll_locked(now, now)

    def flush(self) -> None:
        """Close every pending window now (shutdown) and submit it.

        Raises:
            Exception: whatever the windower's ``flush`` raised (nothing submitted then).
        """
        with self._lock:
            pending = list(self.windower.flush())
        for window in pending:
            self._closed(window)

    def _poll_locked(self, now: float, arrival: float | None) -> None:
        try:
            windows = self.windower.poll(now, arrival)
        except Exception as exc:
            self._counters.reject("windower_errors", f"windower poll failed: {type(exc).__name__}: {exc}")
            return
        for window in windows:
            self._closed(window)

    def _closed(self, window: Any) -> None:
        self._counters.count("windows")
        self._submit(window)
