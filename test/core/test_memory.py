"""HeapTrimmer (core/memory.py): at most one malloc_trim per interval, trims and skipped calls counted; a no-op
without glibc; the arena limit in effect (``arena_max``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from synctva_ros.core import memory
from synctva_ros.core.memory import HeapTrimmer


def test_trims_at_most_once_per_interval():
    now = [100.0]
    trim = HeapTrimmer(min_interval_s=10.0, clock=lambda: now[0])
    if not trim.available:
        pytest.skip("not glibc")
    assert trim() and trim.trims == 1 and trim.skipped == 0
    now[0] = 109.9
    assert not trim() and trim.trims == 1 and trim.skipped == 1
    now[0] = 110.0
    assert trim() and trim.trims == 2 and trim.seconds >= 0.0
    assert trim.stats() == {"trims": 2, "trims_skipped": 1, "trim_s": trim.seconds}


def test_without_glibc_nothing_happens(monkeypatch):
    monkeypatch.setattr(memory, "glibc", lambda: None)
    trim = HeapTrimmer(min_interval_s=0.0)
    assert not trim.available and not trim() and trim.trims == 0
    assert trim.stats() == {"trims": 0, "trims_skipped": 1, "trim_s": 0.0}  # every call is skipped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc")
def test_glibc_is_found_on_linux():
    assert memory.glibc() is not None or "musl" in (memory.ctypes.util.find_library("c") or "")


def test_limit_arenas_leaves_an_environment_setting_alone(monkeypatch):
    monkeypatch.setattr(memory, "_settings", {})
    assert not memory.limit_arenas(2, environ={"MALLOC_ARENA_MAX": "4"})
    assert memory.arena_max({"MALLOC_ARENA_MAX": "4"}) == "4"
    monkeypatch.setattr(memory, "glibc", lambda: None)
    assert not memory.limit_arenas(2, environ={})
    assert memory.arena_max({}) == memory.ARENA_DEFAULT == "default"  # nothing set: glibc's own


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc")
def test_limit_arenas_sets_the_limit_with_glibc(monkeypatch):
    if memory.glibc() is None:
        pytest.skip("not glibc")
    monkeypatch.setattr(memory, "_settings", {})
    assert memory.limit_arenas(memory.ARENA_MAX, environ={})  # mallopt returns 1 on success
    assert memory.arena_max({}) == str(memory.ARENA_MAX) == "2"
    assert memory.arena_max({"MALLOC_ARENA_MAX": "8"}) == "8"  # an environment setting is what glibc uses


def test_fix_mmap_threshold_leaves_an_environment_setting_alone(monkeypatch):
    monkeypatch.setattr(memory, "_settings", {})
    assert not memory.fix_mmap_threshold(environ={"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert memory.mmap_threshold({"MALLOC_MMAP_THRESHOLD_": "131072"}) == "131072"
    assert memory.mmap_threshold({}) == memory.ARENA_DEFAULT  # glibc's dynamic threshold
    monkeypatch.setattr(memory, "glibc", lambda: None)
    assert not memory.fix_mmap_threshold(environ={}) and memory.mmap_threshold({}) == "default"


# Its own mallinfo2 struct rather than bench.memprobe.malloc_stats: importing that module (torch, ...) frees large
# blocks first, which raises glibc's dynamic threshold before the probe starts.
_MMAP_PROBE = """
import ctypes, sys
from synctva_ros.core import memory
lib = memory.glibc()
if lib is None or not hasattr(lib, "mallinfo2"):
    print("skip"); sys.exit(0)
if sys.argv[1] == "fixed":
    assert memory.fix_mmap_threshold(environ={})
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                               "uordblks", "fordblks", "keepcost")]
lib.mallinfo2.restype = MallInfo2
lib.malloc.restype = ctypes.c_void_p
lib.free.argtypes = [ctypes.c_void_p]
mapped = []
for _ in range(3):
    before = lib.mallinfo2().hblkhd
    p = lib.malloc(640 * 480 * 3)
    mapped.append(lib.mallinfo2().hblkhd - before)
    lib.free(p)
print(" ".join(str(m) for m in mapped))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc")
def test_fixed_mmap_threshold_keeps_frames_out_of_the_heap():
    """In a fresh process, a 0.9 MB block (a decoded 640x480 frame) freed and allocated again three times: with glibc's
    dynamic threshold only the first gets its own mapping (the free raises the threshold, the next come from the
    heap); with :func:`fix_mmap_threshold` every one does (``mallinfo2().hblkhd``: bytes in mmapped blocks)."""
    def mapped(mode: str) -> list[int]:
        out = subprocess.run([sys.executable, "-c", _MMAP_PROBE, mode], capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")})
        assert out.returncode == 0, out.stderr
        if out.stdout.strip() == "skip":
            pytest.skip("not glibc >= 2.33")
        return [int(v) for v in out.stdout.split()]

    size = 640 * 480 * 3
    dynamic, fixed = mapped("dynamic"), mapped("fixed")
    assert dynamic[0] >= size and dynamic[1:] == [0, 0], dynamic
    assert all(m >= size for m in fixed), fixed
