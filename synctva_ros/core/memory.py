"""Keeping a long-running process's heap from growing: fewer malloc arenas, free memory given back (issue 14).

The node's steady state churns large buffers: every kept camera frame (0.9 MB decoded at 640x480), its
face crops and network activations are allocated and freed while the utterance goes on, from several
threads (executor, streaming, worker, openSMILE). glibc's allocator keeps what they free inside its heaps,
raises its mmap threshold past the frame size after the first such free (so frames come from the heaps
from then on), and returns only the free memory at the very top of a heap. Measured in the soak
(docs/performance.md, "Soak"): the bytes in use peaked at the same level loop after loop (the buffers are
bounded), but the heaps kept growing with free, fragmented memory, and RSS with them.

:class:`HeapTrimmer` calls glibc's ``malloc_trim(0)`` (which also releases whole free pages inside the
heaps, not only at their top), at most once per ``min_interval_s``; the inference worker calls it when it
has no window waiting, so no waiting window is delayed (one that arrives during a trim waits for it: 53 ms for
a first trim of a 700 MB fragmented heap, 0.4 ms for the next). Between trims a call is one clock read
(about 0.1 us). A no-op where the C library is not glibc. On its own (the soak's hour) it did not stop RSS
growing.

What stopped the heaps' growth in the soak is fewer of them: glibc gives each thread that meets contention an arena of
its own (up to 8 per core), and the node has about 30 threads (executor, worker, streaming, openSMILE, Fast DDS, torch);
each arena keeps its own free memory. With 2 arenas (``MALLOC_ARENA_MAX=2``) the resident memory outside the bytes in
use stayed at 225-246 MB over 15 minutes of the soak, where it grew 228 -> 337 MB with the default, at the same latency
(p50 60 vs 66 ms). :func:`limit_arenas` sets that from inside the process (``mallopt(M_ARENA_MAX)``); the node's
``main`` calls it before any thread starts. A ``MALLOC_ARENA_MAX`` in the environment wins.

What removed the remaining climb (RSS per-loop peaks +7-8 % over the first 15-20 minutes of every hour soak, flat
after) is a fixed mmap threshold: glibc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes with its own
``mmap`` and unmaps it at ``free``, but by default raises that threshold to the size of any such block freed (up
to 32 MB), so after the first frame is freed the 0.9 MB frames, crops and activations are carved out of the heaps,
which fragment. :func:`fix_mmap_threshold` sets it to :data:`MMAP_THRESHOLD` (512 KiB), which also turns the
dynamic raise off (``mallopt(3)``). Measured in a 25-minute soak (docs/performance.md): free memory inside the
heaps 28 MB (100-300 MB before), heaps 258 MB (677-785 MB), per-loop peaks +2.9 % from loop 2 (+7-8 %), node CPU
0.29 cores (0.33): the ``mmap``/``munmap`` per frame costs nothing measurable. ``MALLOC_MMAP_THRESHOLD_`` in the
environment wins.

The node's ``/diagnostics`` show both (:func:`synctva_ros.ros.diagnostics.status_values`): the trimmer's
:meth:`HeapTrimmer.stats` as ``memory.trims``, ``memory.trims_skipped``, ``memory.trim_s`` and the limit in effect,
:func:`arena_max`, as ``memory.arena_max``, and the mmap threshold, :func:`mmap_threshold`, as
``memory.mmap_threshold``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time
from typing import Any, Callable

__all__ = ["HeapTrimmer", "TRIM_INTERVAL_S", "ARENA_MAX", "ARENA_DEFAULT", "MMAP_THRESHOLD", "limit_arenas",
           "arena_max", "fix_mmap_threshold", "mmap_threshold", "configure_allocator", "glibc"]

#: Least seconds between two trims of the node's heap.
TRIM_INTERVAL_S = 10.0

#: glibc malloc arenas the node allows (the main one and one more).
ARENA_MAX = 2
#: Bytes from which glibc serves an allocation with its own ``mmap`` (given back to the system at ``free``), fixed.
MMAP_THRESHOLD = 512 * 1024
_M_ARENA_MAX = -8  # mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
#: :func:`arena_max` / :func:`mmap_threshold` when neither the environment nor this process set the option.
ARENA_DEFAULT = "default"
_settings: dict[str, int] = {}  # what _mallopt() set in this process, by the option's environment variable

_libc: Any = None
_libc_lock = threading.Lock()


def glibc() -> Any:
    """The process's glibc (``ctypes.CDLL``) when it has ``malloc_trim``, else ``None`` (musl, macOS)."""
    global _libc
    with _libc_lock:
        if _libc is None:
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _libc = lib if hasattr(lib, "malloc_trim") else False
            except OSError:
                _libc = False
        return _libc or None


def _mallopt(env_name: str, param: int, value: int, environ: dict[str, str] | None) -> bool:
    """``mallopt(param, value)`` unless ``env_name`` is set in ``environ`` (glibc read it at start-up) or the C
    library is not glibc; returns whether it was set. Raises nothing."""
    env = os.environ if environ is None else environ
    lib = glibc()
    if lib is None or env.get(env_name) or not hasattr(lib, "mallopt"):
        return False
    done = bool(lib.mallopt(param, int(value)))
    if done:
        _settings[env_name] = int(value)
    return done


def _in_effect(env_name: str, environ: dict[str, str] | None) -> str:
    env = os.environ if environ is None else environ
    if env.get(env_name):
        return str(env[env_name])
    return str(_settings[env_name]) if env_name in _settings else ARENA_DEFAULT


def limit_arenas(n: int = ARENA_MAX, environ: dict[str, str] | None = None) -> bool:
    """``mallopt(M_ARENA_MAX, n)``: at most ``n`` glibc malloc arenas from now on (module docstring).

    Call it before threads start (arenas made before stay). Does nothing where the C library is not glibc or
    ``MALLOC_ARENA_MAX`` is set in ``environ`` (default ``os.environ``). Returns whether it set the limit
    (:func:`arena_max` then says ``n``). Raises nothing.
    """
    return _mallopt("MALLOC_ARENA_MAX", _M_ARENA_MAX, n, environ)


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD, environ: dict[str, str] | None = None) -> bool:
    """``mallopt(M_MMAP_THRESHOLD, nbytes)``: allocations of at least ``nbytes`` get their own ``mmap`` and go back to
    the system when freed, and glibc no longer raises the threshold itself (module docstring; ``mallopt(3)``).

    Call it before the large buffers start to churn. Does nothing where the C library is not glibc or
    ``MALLOC_MMAP_THRESHOLD_`` (glibc's own variable, trailing underscore) is set in ``environ``. Returns whether it
    set the threshold (:func:`mmap_threshold` then says ``nbytes``). Raises nothing.
    """
    return _mallopt("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, nbytes, environ)


def configure_allocator() -> None:
    """What the node's ``main`` does before any thread starts: :func:`limit_arenas` and :func:`fix_mmap_threshold`
    (each left to the environment's variable when set; no-ops without glibc). Raises nothing."""
    limit_arenas()
    fix_mmap_threshold()


def arena_max(environ: dict[str, str] | None = None) -> str:
    """The glibc malloc arena limit in effect in this process, as ``/diagnostics`` shows it (``memory.arena_max``).

    Args:
        environ: the environment the process started with (default ``os.environ``).

    Returns:
        ``MALLOC_ARENA_MAX`` from ``environ`` when set (glibc read it at start-up and :func:`limit_arenas` left it
        alone), else the limit :func:`limit_arenas` set (``"2"``), else :data:`ARENA_DEFAULT`. Raises nothing.
    """
    return _in_effect("MALLOC_ARENA_MAX", environ)


def mmap_threshold(environ: dict[str, str] | None = None) -> str:
    """The fixed glibc mmap threshold in effect, bytes, as ``/diagnostics`` shows it (``memory.mmap_threshold``):
    ``MALLOC_MMAP_THRESHOLD_`` from ``environ``, else what :func:`fix_mmap_threshold` set (``"524288"``), else
    :data:`ARENA_DEFAULT` (glibc's dynamic threshold). Raises nothing."""
    return _in_effect("MALLOC_MMAP_THRESHOLD_", environ)


class HeapTrimmer:
    """``trimmer()``: ``malloc_trim(0)`` unless it ran less than ``min_interval_s`` ago.

    Args:
        min_interval_s: least seconds between two trims (0: every call).
        clock: monotonic seconds (tests).

    Attributes:
        trims: trims done. skipped: calls that did not trim (less than ``min_interval_s`` since the last trim,
            or no glibc). seconds: the trims' total wall time, seconds.
    """

    def __init__(self, min_interval_s: float = TRIM_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval_s = float(min_interval_s)
        self._clock = clock
        self._last: float | None = None
        self.trims = 0
        self.skipped = 0
        self.seconds = 0.0
        self._lib = glibc()

    @property
    def available(self) -> bool:
        """Whether trimming does anything here (glibc)."""
        return self._lib is not None

    def __call__(self) -> bool:
        """Trim when due; returns whether it trimmed (a call that does not is counted in ``skipped``). Raises nothing
        (``malloc_trim`` reports no errors)."""
        now = self._clock()
        if self._lib is None or (self._last is not None and now - self._last < self.min_interval_s):
            self.skipped += 1
            return False
        self._last = now
        t0 = time.perf_counter()
        self._lib.malloc_trim(0)
        self.seconds += time.perf_counter() - t0
        self.trims += 1
        return True

    def stats(self) -> dict[str, int | float]:
        """``{"trims": n, "trims_skipped": n, "trim_s": seconds}`` so far (``/diagnostics``: ``memory.<key>``)."""
        return {"trims": self.trims, "trims_skipped": self.skipped, "trim_s": self.seconds}
