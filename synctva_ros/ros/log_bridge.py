"""Python ``logging`` -> rclpy logger bridge, so warnings of the core show in ROS logs.

The ROS-free core logs through the standard ``logging`` tree under ``synctva_ros``;
the node attaches an :class:`RclpyLogHandler` to it (:func:`bridge_core_logging`)
and detaches it when destroyed (:func:`unbridge_core_logging`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

__all__ = ["CORE_LOGGER", "RclpyLogHandler", "bridge_core_logging", "unbridge_core_logging"]

#: Root of the core's ``logging`` tree.
CORE_LOGGER = "synctva_ros"

# One call site per severity: rclpy's RcutilsLogger keys its logging context on the calling line and
# refuses a second severity from the same line ("Logger severity cannot be changed between calls").
_FORWARD: dict[int, Callable[[Any, str], Any]] = {
    logging.DEBUG: lambda ros_logger, text: ros_logger.debug(text),
    logging.INFO: lambda ros_logger, text: ros_logger.info(text),
    logging.WARNING: lambda ros_logger, text: ros_logger.warning(text),
    logging.ERROR: lambda ros_logger, text: ros_logger.error(text),
    logging.CRITICAL: lambda ros_logger, text: ros_logger.fatal(text),
}


class RclpyLogHandler(logging.Handler):
    """Forwards ``logging`` records to an rclpy logger.

    Records are forwarded to ``ros_logger`` (an ``RcutilsLogger``) with the same
    severity (the nearest ROS severity at or below the record's level) and the logger
    name as prefix: ``[synctva_ros.windowing] message``.

    Args:
        ros_logger: anything with ``debug``/``info``/``warning``/``error``/``fatal`` methods.
    """

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(logging.DEBUG)
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102 (logging API)
        try:
            text = f"[{record.name}] {self.format(record)}"
            level = max(k for k in _FORWARD if k <= max(record.levelno, logging.DEBUG))
            _FORWARD[level](self._ros_logger, text)
        except Exception:  # a log call must never raise into the core
            self.handleError(record)


def bridge_core_logging(ros_logger: Any) -> RclpyLogHandler:
    """Send the core's INFO and above to ``ros_logger`` only (no propagation to the root logger).

    Returns:
        The handler, for :func:`unbridge_core_logging`.
    """
    handler = RclpyLogHandler(ros_logger)
    core = logging.getLogger(CORE_LOGGER)
    core.addHandler(handler)
    core.setLevel(logging.INFO)
    core.propagate = False
    return handler


def unbridge_core_logging(handler: RclpyLogHandler) -> None:
    """Detach ``handler`` and let the core's records propagate again."""
    core = logging.getLogger(CORE_LOGGER)
    core.removeHandler(handler)
    core.propagate = True
