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

__all__ = ["SensorClock", "finite_time"]


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

    def clear(self) -> None:
        """Forget every stream's time (a windower reset)."""
        self._latest = {}

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

    def advance(self, stream: str, t: float) -> None:
        """Record stamp ``t`` (seconds) on ``stream``; its newest time never goes back."""
        last = self._latest.get(stream)
        self._latest[stream] = t if last is None else max(last, t)
