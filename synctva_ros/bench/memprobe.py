"""Where a long-running process's memory goes (issue 14's soak): samples taken inside the process.

:class:`MemoryProbe` runs a daemon thread that every ``interval_s`` appends one JSON line to a file:

* ``rss_mb``: resident set size (``VmRSS``), and ``rss_parts``: its anonymous, file-backed and shared-memory
  parts (``RssAnon``, ``RssFile``, ``RssShmem``, MB: heap growth is anonymous; libraries mapped in are file;
  Fast DDS's shared-memory transport segments are shared memory);
* ``malloc``: glibc's ``mallinfo2()`` in MB: ``arena`` (heap obtained with brk/sbrk and arena mmaps),
  ``mmap`` (large blocks mmapped one by one), ``in_use`` (bytes handed out by malloc), ``free`` (held by
  malloc but free: fragmentation and not-yet-returned memory); ``None`` where glibc is not there. RSS growth
  that shows up as ``free`` is the allocator keeping memory, growth in ``in_use`` is live objects (a leak
  or a cache), growth in neither is memory malloc does not manage (Python's obmalloc arenas, mmaps of
  libraries such as onnxruntime's arena or Fast DDS's pools);
* ``py_objects``: objects the garbage collector tracks, and the ``top_types`` whose counts grew most since
  the first sample;
* ``containers``: the length of every list, dict, set and deque reachable from ``root`` (a callable giving
  the object to walk, e.g. the node) through attributes of this package's objects, by attribute path; the
  lines keep those whose length changed since the first sample (an unbounded structure grows here);
* ``tracemalloc`` (when started with ``tracemalloc=True``): the source lines whose Python allocations grew
  most since the first sample;
* ``trimmed_mb`` (with ``trim_every`` > 0, every that many samples): RSS right after ``malloc_trim(0)``,
  i.e. how much of RSS the allocator could give back (fragmentation, not a leak).

ROS-free; :mod:`synctva_ros.ros.soak` starts the emotion node under it (``scripts/soak.py --probe``).
"""

from __future__ import annotations

import collections
import ctypes
import gc
import json
import os
import threading
import time
import tracemalloc as _tm
from pathlib import Path
from typing import Any, Callable

from synctva_ros.bench.soak import proc_status_mb, read_proc
from synctva_ros.core.memory import glibc

__all__ = ["MemoryProbe", "rss_parts", "malloc_stats", "malloc_trim", "container_lengths"]

_MB = float(2**20)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


_RSS_PARTS = {"RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem"}


def rss_parts(pid: int | None = None) -> dict[str, float]:
    """``{"anon", "file", "shmem"}``: the parts of a process's RSS (this process's when ``pid`` is ``None``) in MB
    (Linux ``/proc/<pid>/status``, :func:`~synctva_ros.bench.soak.proc_status_mb`; empty elsewhere)."""
    parts = proc_status_mb(pid or os.getpid(), tuple(_RSS_PARTS))
    return {_RSS_PARTS[k]: mb for k, mb in parts.items()}


def malloc_stats() -> dict[str, float] | None:
    """glibc ``mallinfo2()`` over all arenas, MB (module docstring); ``None`` without glibc >= 2.33."""
    libc = glibc()
    fn = getattr(libc, "mallinfo2", None) if libc is not None else None
    if fn is None:
        return None
    fn.restype = _MallInfo2
    m = fn()
    return {"arena": m.arena / _MB, "mmap": m.hblkhd / _MB, "in_use": (m.uordblks + m.hblkhd) / _MB,
            "free": m.fordblks / _MB}


def malloc_trim() -> bool:
    """``malloc_trim(0)``: give free heap memory back to the system; returns whether any was (False without
    glibc)."""
    libc = glibc()  # None unless it has malloc_trim
    return bool(libc.malloc_trim(0)) if libc is not None else False


def container_lengths(root: Any, max_depth: int = 8, prefix: str = "synctva_ros") -> dict[str, int]:
    """Length of every list/dict/set/deque/OrderedDict reachable from ``root``.

    Walks attributes (``__dict__`` and ``__slots__``) of ``root`` and of objects whose class lives in a module
    starting with ``prefix``, and the values of containers, to ``max_depth`` levels; each object is visited once
    (the first path found names it). Paths look like ``_feed.windower._frames._items``; container values are walked as
    ``path[]``.
    """
    out: dict[str, int] = {}
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > max_depth:
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple, set, frozenset, dict, collections.deque)):
            if not isinstance(obj, tuple):
                out[path] = len(obj)
            values = obj.values() if isinstance(obj, dict) else obj
            for v in list(values)[:64]:  # a sample of the items: their own containers
                walk(v, path + "[]", depth + 1)
            return
        if depth > 0 and not type(obj).__module__.startswith(prefix):  # the root is walked whatever its class
            return
        attrs = dict(getattr(obj, "__dict__", {}))
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                attrs[slot] = getattr(obj, slot)
        for name, v in attrs.items():
            walk(v, f"{path}.{name}" if path else name, depth + 1)

    walk(root, "", 0)
    return out


class MemoryProbe:
    """Sample memory inside this process every ``interval_s`` seconds into ``path`` (JSON lines).

    Args:
        path: output file (appended).
        interval_s: seconds between samples.
        root: callable returning the object whose containers are measured (``None``: none), e.g. the node.
        tracemalloc: start :mod:`tracemalloc` (slows Python allocations) and report the lines that grew.
        trim_every: every this many samples call ``malloc_trim(0)`` after sampling and record RSS after it
            (0: never; trimming changes what later samples see, so use it in a run of its own).
        top: how many growing types / lines / containers each line keeps.
    """

    def __init__(self, path: str | Path, interval_s: float = 30.0, root: Callable[[], Any] | None = None,
                 tracemalloc: bool = False, trim_every: int = 0, top: int = 15) -> None:
        self.path = Path(path)
        self.interval_s = float(interval_s)
        self.root = root
        self.tracemalloc = bool(tracemalloc)
        self.trim_every = int(trim_every)
        self.top = int(top)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="synctva_memprobe", daemon=True)
        self._t0 = time.monotonic()
        self._types0: collections.Counter[str] | None = None
        self._cont0: dict[str, int] | None = None
        self._snap0: Any = None
        self.samples = 0

    def start(self) -> "MemoryProbe":
        """Start tracemalloc (when asked) and the sampling thread; returns ``self``."""
        if self.tracemalloc and not _tm.is_tracing():
            _tm.start(1)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the sampling thread (waits at most 10 s for a sample in progress); no last sample is taken."""
        self._stop.set()
        self._thread.join(10.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                line = self.sample()
            except Exception as exc:  # the probe never stops the process it watches
                line = {"wall_s": round(time.monotonic() - self._t0, 1), "error": f"{type(exc).__name__}: {exc}"}
            with self.path.open("a") as fh:
                fh.write(json.dumps(line) + "\n")

    def sample(self) -> dict[str, Any]:
        """One sample (module docstring); the first one is the reference for the growth fields."""
        self.samples += 1
        rss, cpu = read_proc(os.getpid())
        types = collections.Counter(type(o).__name__ for o in gc.get_objects())
        line: dict[str, Any] = {"wall_s": round(time.monotonic() - self._t0, 1), "rss_mb": rss, "cpu_s": cpu,
                                "rss_parts": rss_parts(), "malloc": malloc_stats(), "py_objects": sum(types.values()),
                                "threads": threading.active_count()}
        if self._types0 is None:
            self._types0 = types
        grew = sorted(((n - self._types0.get(t, 0), t) for t, n in types.items()), reverse=True)[: self.top]
        line["top_types"] = {t: d for d, t in grew if d > 0}
        root = self.root() if self.root is not None else None
        if root is not None:
            cont = container_lengths(root)
            if self._cont0 is None:
                self._cont0 = cont
            changed = {p: n for p, n in cont.items() if n != self._cont0.get(p)}
            line["containers"] = dict(sorted(changed.items(), key=lambda kv: -kv[1])[: 3 * self.top])
            line["containers_total"] = sum(cont.values())
        if self.tracemalloc and _tm.is_tracing():
            snap = _tm.take_snapshot().filter_traces([_tm.Filter(False, _tm.__file__)])
            line["traced_mb"] = _tm.get_traced_memory()[0] / _MB
            if self._snap0 is None:
                self._snap0 = snap
            stats = snap.compare_to(self._snap0, "lineno")[: self.top]
            line["tracemalloc"] = [f"{s.size_diff / _MB:+.2f} MB {s.count_diff:+d} "
                                   f"{s.traceback[0].filename.rsplit('/', 2)[-1]}:{s.traceback[0].lineno}"
                                   for s in stats]
        if self.trim_every > 0 and self.samples % self.trim_every == 0:
            t0 = time.perf_counter()
            malloc_trim()
            line["trim_ms"] = round(1e3 * (time.perf_counter() - t0), 2)
            line["trimmed_mb"] = read_proc(os.getpid())[0]
            line["trimmed_malloc"] = malloc_stats()
        return line
