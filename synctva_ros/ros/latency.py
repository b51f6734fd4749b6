"""Window-close -> publish latency statistics for ``/diagnostics`` (ROS-free).

The worker adds one latency per published window; each diagnostics report takes a
:class:`LatencySnapshot`: the last latency, the worst one since the previous report
(what the WARN/ERROR thresholds judge) and the p50/p95 of the most recent windows.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

__all__ = ["LATENCY_HISTORY", "LatencySnapshot", "LatencyStats"]

#: Latencies kept for the percentiles (the most recent windows).
LATENCY_HISTORY = 256


@dataclass(frozen=True)
class LatencySnapshot:
    """One report's latencies, seconds.

    Attributes:
        last_s: latency of the last published window (NaN before the first).
        worst_s: worst latency since the previous report; with none in that period the
            last one (0.0 before the first window).
        p50_s, p95_s: nearest-rank median and 95th percentile of the recent windows
            (``sorted[n // 2]``, ``sorted[min(n - 1, int(0.95 n))]``); None before the first.
    """

    last_s: float
    worst_s: float
    p50_s: float | None
    p95_s: float | None


class LatencyStats:
    """Thread-safe latency record: the worker adds, the diagnostics timer reports.

    Args:
        history: how many recent latencies the percentiles cover (default :data:`LATENCY_HISTORY`).
    """

    def __init__(self, history: int = LATENCY_HISTORY) -> None:
        self._lock = threading.Lock()
        self._recent: deque[float] = deque(maxlen=history)
        self._period: list[float] = []
        self._last = float("nan")

    def add(self, latency_s: float) -> None:
        """Record one published window's latency (seconds)."""
        with self._lock:
            self._last = latency_s
            self._recent.append(latency_s)
            self._period.append(latency_s)

    def report(self) -> LatencySnapshot:
        """Snapshot for one diagnostics report; starts a new period (for ``worst_s``)."""
        with self._lock:
            period, self._period = self._period, []
            last = self._last
            recent = sorted(self._recent)
        worst = max(period) if period else (last if math.isfinite(last) else 0.0)
        if not recent:
            return LatencySnapshot(last, worst, None, None)
        n = len(recent)
        return LatencySnapshot(last, worst, recent[n // 2], recent[min(n - 1, int(0.95 * n))])
