"""Sensor time seen by the windower: the newest stamp per stream and time-reset detection.

Rule 6 of :mod:`synctva_ros.windowing.windower`: a sensor stream (frames or audio) going
back in time by more than ``time_reset_s`` seconds (a bag restarted, a simulator reset)
resets the windower. :class:`SensorClock` keeps the newest sensor time (seconds, the
messages' ``header.stamp``, REP-103) of each stream since the last reset and says when a
stamp went back that far; the windower decides what a reset does. Transcripts are tracked
too (their newest time decides whether voice activity may close windows, rule 9) but never
trigger a reset.
"""

from __future__ import annotations

import math

__all__ = ["SensorClock", "finite_time", "JITTER_FACTOR", "JITTER_HALF_LIFE_S"]

#: A stream is idle after this many times its recent delivery jitter of silence (at least ``idle_s``, at most
#: ``wait_s``; :meth:`SensorClock.closing_time`), as a retransmission timeout is a multiple of the round-trip
#: variation (RFC 6298).
JITTER_FACTOR = 2.0
#: Half-life of a stream's delivery-jitter estimate (seconds of arrival time).
JITTER_HALF_LIFE_S = 10.0


def finite_time(x: object) -> bool:
    """Whether ``x`` converts to a finite float (a usable time in seconds); never raises."""
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


class SensorClock:
    """Newest sensor time per stream (``"frame"``, ``"audio"``, ``"transcript"``), in seconds."""

    def __init__(self) -> None:
        self._latest: dict[str, float] = {}
        self._arrived: dict[str, float] = {}
        self._last_any: float | None = None  # newest arrival of anything: a message or a poll
        self._resumed: float | None = None  # the arrival that ended a silence of everything (a stall)
        self._jitter: dict[str, tuple[float, float]] = {}  # stream -> (delivery jitter estimate s, at arrival s)
        self._stamp: dict[str, float] = {}  # stream -> its last message's stamp (its arrival: _arrived), for the jitter
        self._origin: tuple[float, float] | None = None  # (stamp, arrival) of the first sensor message since clear()

    def clear(self) -> None:
        """Forget every stream's time (a windower reset). The delivery-jitter estimates are kept: they describe the
        transport (queues, executor, network), which a time reset (a bag looping, a simulator restarting) does not
        change; they go on decaying with arrival time (:meth:`jitter`)."""
        self._latest = {}
        self._arrived = {}
        self._stamp = {}
        self._origin = None
        self._last_any = self._resumed = None

    def _note_arrival(self, arrival: float, idle_s: float) -> None:
        """Something (a message, a poll) arrived at ``arrival`` (s); one that ends a silence of everything longer
        than ``idle_s`` (a stalled executor, a paused replay) starts idleness afresh: nobody was heard meanwhile,
        so silence says nothing about any one stream. ``idle_s`` 0 (nothing is waited for) never restarts it."""
        if idle_s > 0 and self._last_any is not None and arrival - self._last_any > idle_s:
            self._resumed = arrival
        self._last_any = arrival if self._last_any is None else max(self._last_any, arrival)

    @property
    def latest(self) -> float | None:
        """Newest time seen on any stream since the last :meth:`clear` (seconds), or ``None``."""
        return max(self._latest.values()) if self._latest else None

    @property
    def sensor_latest(self) -> float | None:
        """Newest camera (``"frame"``) or ``"audio"`` time since the last :meth:`clear` (seconds), or ``None``."""
        frame, audio = self._latest.get("frame"), self._latest.get("audio")  # per message: no list built
        if frame is None or audio is None:
            return audio if frame is None else frame
        return max(frame, audio)

    def closing_time(self, now: float, wait_s: float, idle_s: float, arrival: float | None = None) -> float:
        """The sensor time up to which every live camera/audio stream has delivered (seconds).

        ``now``, lowered to the newest stamp of each sensor stream that lags it by less than ``wait_s``
        and is not idle: a window ending before the result has the data of every stream that is
        keeping up. A stream is not waited for when it is ``wait_s`` or more behind (stalled, far
        behind after a backlog), when nothing arrived from it for ``idle_s`` while other messages (or
        the poll itself, ``arrival``) did (a microphone that publishes only while someone speaks, an
        unplugged camera), or when it was never seen since the last :meth:`clear`. Silence only counts
        while the caller was running: after a gap of more than ``idle_s`` in which nothing arrived at all
        (the executor stalled; its queued messages come next) every stream gets ``idle_s`` afresh from
        the first arrival after the gap. A stream whose messages were recently delayed in delivery (an arrival gap
        longer than the sensor time it covered: a queue behind camera frames, a jumpy simulated clock) gets
        :data:`JITTER_FACTOR` times that delay before it counts as idle (at least ``idle_s``, at most ``wait_s``;
        :meth:`jitter`); the estimate outlives :meth:`clear`, and such a stream not heard since the clear is waited
        for from the first sensor message after it (its stamp and arrival) as if it had delivered up to there.
        This is the watermark of stream processing, the minimum over the inputs' event times with idle inputs
        left out (Apache Flink's ``WatermarkStrategy.withIdleness``), bounded by ``wait_s``.

        Args:
            now: the poll's time (seconds).
            wait_s: ``WindowingConfig.stream_wait_s`` (seconds); 0 gives ``now`` (close on any stream's time).
            idle_s: silence, in arrival time, after which a stream is idle (seconds; the windower uses ``late_s``),
                unless its delivery jitter asks for longer.
            arrival: when the poll happens in the caller's clock (seconds), ``None`` if unknown.
        """
        if finite_time(arrival):
            self._note_arrival(float(arrival), idle_s)  # type: ignore[arg-type]
        newest = self._last_any
        t = now
        for stream in ("frame", "audio"):
            last, since = self._latest.get(stream), self._arrived.get(stream)
            if last is None and self._origin is not None and self.jitter(stream) > 0:
                last, since = self._origin  # not heard since the clear, but delivered late before it: wait for it
            if last is None or not now - wait_s < last < t:
                continue
            since = last if since is None else since
            if self._resumed is not None and self._resumed > since:
                since = self._resumed
            idle = idle_s if newest is None else max(idle_s, min(wait_s, JITTER_FACTOR * self.jitter(stream, newest)))
            if newest is not None and since < newest - idle:
                continue  # idle: nothing came from it lately while other messages did
            t = last
        return t

    def last(self, stream: str) -> float | None:
        """Newest time seen on ``stream`` since the last :meth:`clear` (seconds), or ``None``."""
        return self._latest.get(stream)

    def went_back(self, stream: str, t: float, tolerance_s: float) -> bool:
        """Whether ``t`` is more than ``tolerance_s`` seconds before ``stream``'s newest time.

        Args:
            stream: stream name.
            t: the new stamp (seconds).
            tolerance_s: ``WindowingConfig.time_reset_s`` (seconds).

        Returns:
            False for a stream not seen since the last :meth:`clear`.
        """
        last = self._latest.get(stream)
        return last is not None and t < last - tolerance_s

    def advance(self, stream: str, t: float, arrival: float | None = None, idle_s: float = math.inf) -> None:
        """Record stamp ``t`` (seconds) on ``stream``, which arrived at ``arrival`` (seconds, the caller's clock;
        ``None`` or not finite: unknown, ``t`` stands in); the stream's newest time never goes back. ``idle_s``
        is :meth:`closing_time`'s (the windower's ``late_s``): an arrival after a longer silence of everything
        restarts idleness."""
        last = self._latest.get(stream)
        self._latest[stream] = t if last is None else max(last, t)
        at = float(arrival) if finite_time(arrival) else t  # type: ignore[arg-type]
        prev_at, prev_t = self._arrived.get(stream), self._stamp.get(stream)
        self._arrived[stream], self._stamp[stream] = at, t
        if self._origin is None and stream in ("frame", "audio"):
            self._origin = (t, at)
        self._note_arrival(at, idle_s)
        stalled = self._resumed is not None and prev_at is not None and prev_at < self._resumed <= at
        if prev_at is not None and prev_t is not None and t >= prev_t and not stalled:  # a stall is nobody's jitter
            # delivery jitter: how much longer the wait for this message was than the sensor time it covers; ~0 for a
            # stream that paused (a microphone silent between utterances: stamps and arrivals jump together)
            jitter = max(0.0, (at - prev_at) - (t - prev_t))
            self._jitter[stream] = (max(jitter, self.jitter(stream, at)), at)

    def jitter(self, stream: str, at: float | None = None) -> float:
        """``stream``'s recent delivery jitter (seconds): the largest excess of an arrival gap over its stamp gap,
        decaying with half-life :data:`JITTER_HALF_LIFE_S` of arrival time to ``at`` (default: its last arrival)."""
        est = self._jitter.get(stream)
        if est is None:
            return 0.0
        age = 0.0 if at is None else max(0.0, at - est[1])
        return est[0] * 0.5 ** (age / JITTER_HALF_LIFE_S)
