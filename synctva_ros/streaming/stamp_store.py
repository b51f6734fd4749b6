"""Per-frame results keyed by sensor stamp, produced on a fixed grid of ticks: the store both frame caches share.

:class:`~synctva_ros.streaming.visual_cache.VisualCache` (frame embeddings) and
:class:`~synctva_ros.streaming.face_cache.FaceEvidenceCache` (face observations) process camera frames while
the utterance goes on and look them up when the window closes. What they share lives here:

* **The grid** (:meth:`StampStore.due`): a frame is due when its stamp reaches the next tick; ticks advance by
  one period at a time (so the processing rate does not drift below ``1 / period``), and jump to
  ``stamp + period`` after a gap. A stamp more than ``period + gap_tolerance_s + 1`` s before the grid (time
  went back, e.g. a restarted bag) clears the store.
* **Generations** (:meth:`reset`, :meth:`put`): a result computed for an older generation is dropped, so a
  reset while a frame is being processed cannot bring old results back.
* **The buffer**: results older than ``buffer_s`` before the newest stored one are dropped.
* **The lookup** (:meth:`lookup`): the result of the very frame (``"hit"``), else, unless ``exact``, of the
  nearest stored frame within ``tolerance_s`` (``"near"``), else none (``"miss"``).

Stamps are keyed rounded to the microsecond. Thread-safe (one lock).
"""

from __future__ import annotations

import math
import threading
from typing import Generic, Sequence, TypeVar

import numpy as np

__all__ = ["StampStore"]

V = TypeVar("V")


class StampStore(Generic[V]):
    """Results by stamp, produced on a grid of ticks ``period_s`` apart.

    Args:
        period_s: seconds between ticks (``1 / rate``), > 0.
        buffer_s: seconds of results kept before the newest one.
        gap_tolerance_s: slack, in seconds, before a stamp earlier than the grid counts as time going back.
        tick_slack_s: a stamp this much before the next tick still counts as reaching it (floating-point
            round-off of grid sums; 0 = exact).
    """

    def __init__(self, period_s: float, buffer_s: float, gap_tolerance_s: float, tick_slack_s: float = 0.0) -> None:
        self.period_s = float(period_s)
        self.buffer_s = float(buffer_s)
        self.gap_tolerance_s = float(gap_tolerance_s)
        self.tick_slack_s = float(tick_slack_s)
        self._lock = threading.Lock()
        self._gen = 0
        self._items: dict[float, V] = {}  # round(stamp, 6) -> result
        self._next_tick = -math.inf

    def __len__(self) -> int:
        """Results stored now."""
        with self._lock:
            return len(self._items)

    def reset(self, gen: int) -> None:
        """Forget every result and the grid; results of a generation other than ``gen`` are dropped from now on."""
        with self._lock:
            self._gen = gen
            self._items.clear()
            self._next_tick = -math.inf

    def due(self, stamp: float) -> bool:
        """Whether a frame at ``stamp`` s is due (advances the grid when it is); see the module."""
        period = self.period_s
        with self._lock:
            if stamp < self._next_tick - period - self.gap_tolerance_s - 1.0:  # time went back (bag restart)
                self._items.clear()
                self._next_tick = -math.inf
            if stamp < self._next_tick - self.tick_slack_s or round(stamp, 6) in self._items:
                return False
            # ticks on a fixed grid, so the processing rate does not drift below 1 / period
            self._next_tick = self._next_tick + period if math.isfinite(self._next_tick) else stamp + period
            if self._next_tick <= stamp:
                self._next_tick = stamp + period
            return True

    def put(self, stamp: float, value: V, gen: int) -> None:
        """Store ``value`` for the frame at ``stamp`` s unless the store was reset since (``gen`` not current);
        drops results older than ``buffer_s`` before ``stamp``."""
        with self._lock:
            if gen != self._gen:
                return
            self._items[round(stamp, 6)] = value
            for s in [s for s in self._items if s < stamp - self.buffer_s]:
                del self._items[s]

    def lookup(self, stamps: Sequence[float], tolerance_s: float, exact: bool = False
               ) -> list[tuple[V | None, str]]:
        """Per stamp, the stored result and how it was found: ``"hit"``, ``"near"`` (within ``tolerance_s``,
        only when not ``exact``) or ``"miss"`` (result None)."""
        out: list[tuple[V | None, str]] = []
        with self._lock:
            keys = np.array(sorted(self._items)) if self._items else np.zeros(0)
            for stamp in stamps:
                key = round(stamp, 6)
                if key in self._items:
                    out.append((self._items[key], "hit"))
                    continue
                if not exact and keys.size:
                    j = int(np.abs(keys - stamp).argmin())
                    if abs(keys[j] - stamp) <= tolerance_s + 1e-9:
                        out.append((self._items[float(keys[j])], "near"))
                        continue
                out.append((None, "miss"))
        return out
