"""The inference worker: one thread that runs the pipeline on closed utterance windows (ROS-free).

ROS callbacks only :meth:`InferenceWorker.submit` windows; the thread runs
``predict`` on them oldest first and hands each result to ``publish``, so the
executor never blocks on inference. When inference falls behind, at most
``max_pending`` windows wait and the oldest is dropped (counted as
``windows_dropped``), so the output never lags further and further behind the robot.
Dialogue resets need nothing here: every window carries its windower session
(:attr:`~synctva_ros.core.window.UtteranceWindow.session`) and the pipeline resets its
context when the session changes, so a reset can neither overtake the old session's last
windows nor be dropped with a full queue.
When a window is done (published or failed) and no other waits, the thread calls ``idle`` (the node gives it a
:class:`~synctva_ros.core.memory.HeapTrimmer`: freed memory goes back to the system between windows).
Everything it calls is a plain callable: tests run it without rclpy.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

__all__ = ["MAX_PENDING_WINDOWS", "InferenceWorker"]

#: Most windows waiting for the worker; beyond it the oldest is dropped (counted).
MAX_PENDING_WINDOWS = 16

_STOP = object()


class InferenceWorker:
    """A queue of closed windows and the thread that predicts and publishes them.

    Args:
        predict: window -> result (e.g. :meth:`synctva_ros.pipeline.EmotionPipeline.predict`).
        publish: ``publish(window, result, latency_s)``; ``latency_s`` is the time
            from :meth:`submit` to the end of ``predict``, seconds.
        reject: ``reject(kind, message)`` for a window that failed (``pipeline_errors``:
            ``predict`` or ``publish`` raised) or was dropped (``windows_dropped``).
        published: called with ``latency_s`` after each successful ``publish``.
        idle: called after a window (published or failed) when no other window waits; its errors are ignored.
        max_pending: windows allowed to wait (default :data:`MAX_PENDING_WINDOWS`).
        clock: monotonic time in seconds (default :func:`time.monotonic`).
        name: thread name.

    Windows need ``start`` and ``end`` (seconds) for the error message.
    """

    def __init__(self, predict: Callable[[Any], Any], publish: Callable[[Any, Any, float], None],
                 reject: Callable[[str, str], None], published: Callable[[float], None],
                 max_pending: int = MAX_PENDING_WINDOWS,
                 clock: Callable[[], float] = time.monotonic, name: str = "synctva_worker",
                 idle: Callable[[], Any] | None = None) -> None:
        self._predict = predict
        self._publish = publish
        self._reject = reject
        self._published = published
        self.max_pending = max_pending
        self._clock = clock
        self._idle = idle
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def pending(self) -> int:
        """Windows waiting in the queue."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def submit(self, window: Any) -> None:
        """Queue a closed window; when ``max_pending`` already wait, drop the oldest first."""
        while self._queue.qsize() >= self.max_pending:
            try:
                dropped = self._queue.get_nowait()
            except queue.Empty:
                break
            if dropped is not _STOP:
                self._reject("windows_dropped", f"inference is {self.max_pending} windows behind: "
                                                "oldest window dropped")
        self._queue.put((window, self._clock()))

    def stop(self, timeout_s: float) -> bool:
        """Finish the windows queued so far, then end the thread.

        Args:
            timeout_s: longest wait for the thread, seconds.

        Returns:
            True when the thread ended (or never started); False when it is still busy
            after ``timeout_s`` (it is a daemon: the process can still exit).
        """
        self._queue.put(_STOP)
        if not self._thread.is_alive():
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            window, closed_at = item
            try:
                result = self._predict(window)
                latency = self._clock() - closed_at
                self._publish(window, result, latency)
            except Exception as exc:
                self._reject("pipeline_errors", f"window [{window.start:.3f}, {window.end:.3f}] s failed: "
                                                f"{type(exc).__name__}: {exc}")
            else:
                self._published(latency)
            if self._idle is not None and self._queue.empty():
                try:
                    self._idle()
                except Exception:  # housekeeping never stops the worker
                    pass
