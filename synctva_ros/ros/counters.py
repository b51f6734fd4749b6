"""Diagnostics counters, throttled warnings and the input gate of the node's callbacks (ROS-free).

Every input the node cannot use is *rejected*: counted under a short kind (the
``count.<kind>`` values of ``/diagnostics``) and warned about at most every
:data:`WARN_PERIOD_S` seconds per kind, so a broken driver cannot flood the log.
:class:`InputGate` is the one path all subscription callbacks take: drop while
inactive, convert the message, reject it on a conversion error, else hand the
converted value on. Nothing here imports rclpy: the warning sink and the clock are
plain callables.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

__all__ = ["WARN_PERIOD_S", "Counters", "InputGate"]

#: Minimum seconds between two warnings of the same kind.
WARN_PERIOD_S = 5.0


class Counters:
    """Thread-safe counters by name, with throttled warnings per kind.

    Args:
        warn: sink of warning lines (e.g. an rclpy logger's ``warning``).
        period_s: minimum seconds between two warnings of the same kind
            (default :data:`WARN_PERIOD_S`).
        clock: monotonic time in seconds (default :func:`time.monotonic`).

    Attributes:
        values: the counts by name; read it through :meth:`snapshot` from another thread.
    """

    def __init__(self, warn: Callable[[str], None], period_s: float = WARN_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.values: dict[str, int] = {}
        self._warn = warn
        self._period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._warned_at: dict[str, float] = {}

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key`` (created at 0)."""
        with self._lock:
            self.values[key] = self.values.get(key, 0) + n

    def get(self, key: str) -> int:
        """Current value of ``key`` (0 if never counted)."""
        with self._lock:
            return self.values.get(key, 0)

    def snapshot(self) -> dict[str, int]:
        """A copy of all counters, taken under the lock."""
        with self._lock:
            return dict(self.values)

    def reject(self, kind: str, message: str) -> None:
        """Count a rejected input under ``kind`` and warn (throttled per kind).

        The warning reads ``"<message> [<kind>: <n> so far]"``.
        """
        self.count(kind)
        self.warn_throttled(kind, f"{message} [{kind}: {self.get(kind)} so far]")

    def warn_throttled(self, kind: str, message: str) -> bool:
        """Warn at most every ``period_s`` seconds per ``kind``. Returns whether it warned."""
        now = self._clock()
        with self._lock:
            last = self._warned_at.get(kind)
            if last is not None and now - last < self._period_s:
                return False
            self._warned_at[kind] = now
        self._warn(message)
        return True


class InputGate:
    """The shared guard / convert / reject path of the node's subscription callbacks.

    Args:
        counters: where rejected messages are counted and warned about.
        errors: exception types of a conversion that mean "reject this message";
            each must carry a ``kind`` attribute, the counter name (as
            :class:`synctva_ros.ros.conversions.InputError` does).

    Attributes:
        active: messages are accepted only while true (the node's *active* lifecycle state).
    """

    def __init__(self, counters: Counters, errors: tuple[type[Exception], ...]) -> None:
        self.counters = counters
        self.errors = errors
        self.active = False

    def __call__(self, msg: Any, convert: Callable[[Any], Any], handle: Callable[[Any], None]) -> bool:
        """Pass ``convert(msg)`` to ``handle`` when active and the conversion succeeds.

        Args:
            msg: the incoming message.
            convert: message -> value; raises one of ``errors`` for a message the node cannot use.
            handle: called with the converted value (its own errors propagate).

        Returns:
            True when ``handle`` was called; False when inactive (nothing counted) or
            rejected (counted under the error's ``kind``, throttled warning).
        """
        if not self.active:
            return False
        try:
            value = convert(msg)
        except self.errors as exc:
            self.counters.reject(exc.kind, str(exc))
            return False
        handle(value)
        return True
