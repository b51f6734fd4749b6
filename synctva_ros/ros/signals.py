"""Process signals of the node's console entry point (ROS-free).

The node installs no rclpy signal handlers: they would shut the context down on
Ctrl-C before the pending windows are flushed and published. Instead SIGINT and
SIGTERM (``ros2 launch``'s escalation) raise :class:`KeyboardInterrupt` in the main
thread, which :func:`synctva_ros.ros.node.main` turns into a clean, flushing stop.
SIGUSR1 (``kill -USR1 <pid>``) writes every thread's Python stack to stderr, for a
node that seems stuck.
"""

from __future__ import annotations

import contextlib
import faulthandler
import signal
from typing import Any, Iterator

__all__ = ["stop_on_signals"]


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside: SIGINT and SIGTERM raise ``KeyboardInterrupt``; SIGUSR1 dumps all stacks.

    SIGINT's handler is installed explicitly, as rclpy's own handlers would: a parent
    that ignores SIGINT (a shell's background job without job control) passes
    ``SIG_IGN`` on, and Python then installs no ``KeyboardInterrupt`` handler, so
    ``ros2 launch``'s or a test's SIGINT would be ignored and the node killed without
    flushing. The previous SIGINT and SIGTERM handlers are restored on exit. Main
    thread only (:func:`signal.signal`).
    """
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
