"""A backend that serves a fallback until a slow-to-build backend is ready (e.g. a TensorRT engine).

Building a TensorRT engine takes seconds to minutes. So that a ROS executor never blocks,
:class:`SwitchingBackend` starts the build in a background thread and answers ``infer``
with the fallback backend (onnxruntime, else torch) until the build has finished; it then
switches, logging the switch once. When the build fails the fallback keeps serving and the
error is logged and kept in :attr:`SwitchingBackend.error`. ``name`` always names the
backend that answers *now* (``"tensorrt"`` after the switch), so results report truthfully
which backend produced them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np

from synctva_ros.core.batch import Batch
from .base import Backend

__all__ = ["SwitchingBackend"]

log = logging.getLogger(__name__)


class SwitchingBackend(Backend):
    """Fallback first, then the primary backend once ``build`` has returned it.

    Args:
        fallback: backend that answers while the primary is being built (and if its build fails).
        build: called once in a background thread; returns the primary backend.
        primary_name: name of the primary (for logs).

    Attributes:
        ready: ``threading.Event`` set when the build finished (successfully or not).
        error: the exception of a failed build, else ``None``.
        build_s: seconds the build took (``None`` until it finished).

    Shapes:
        ``infer(batch)`` -> logits ``(B, C)``, contributions ``(B, 3)``, float32, from whichever
        backend is current.
    """

    def __init__(self, fallback: Backend, build: Callable[[], Backend], primary_name: str = "tensorrt") -> None:
        self.fallback = fallback
        self.primary: Backend | None = None
        self.primary_name = primary_name
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.build_s: float | None = None
        self._lock = threading.Lock()
        self._switched = False
        self._thread = threading.Thread(target=self._run, args=(build,), name=f"{primary_name}-build", daemon=True)
        log.info("building the %s backend in the background; serving %s until it is ready",
                 primary_name, fallback.name)
        self._thread.start()

    def _run(self, build: Callable[[], Backend]) -> None:
        t0 = time.perf_counter()
        try:
            primary = build()
            with self._lock:
                self.primary = primary
        except BaseException as exc:  # noqa: BLE001 - reported, never raised in the executor thread
            self.error = exc
            log.error("%s backend could not be built (%s); staying on %s", self.primary_name, exc,
                      self.fallback.name)
        finally:
            self.build_s = time.perf_counter() - t0
            self.ready.set()

    @property
    def current(self) -> Backend:
        """The backend that answers now."""
        with self._lock:
            p = self.primary
        if p is not None and not self._switched:
            self._switched = True
            log.info("switching from %s to %s (built in %.1f s)", self.fallback.name, p.name, self.build_s or 0.0)
        return p if p is not None else self.fallback

    @property  # type: ignore[override]
    def name(self) -> str:  # noqa: D401
        """Name of the backend answering now."""
        return self.current.name

    @property  # type: ignore[override]
    def tolerance(self) -> float:
        """Tolerance of the backend answering now."""
        return self.current.tolerance

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the build finished (True) or ``timeout`` seconds passed (False)."""
        return self.ready.wait(timeout)

    def infer(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Run the current backend (never waits for the build)."""
        return self.current.infer(batch)

    def infer_subsets(self, batch: Batch, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The current backend's :meth:`~synctva_ros.backends.base.Backend.infer_subsets` (never waits)."""
        return self.current.infer_subsets(batch, keep)
