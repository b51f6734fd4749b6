"""HeapTrimmer (core/memory.py): at most one malloc_trim per interval, trims and skipped calls counted; a no-op
without glibc; the arena limit in effect (``arena_max``)."""

from __future__ import annotations

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
    monkeypatch.setattr(memory, "_arena_set", None)
    assert not memory.limit_arenas(2, environ={"MALLOC_ARENA_MAX": "4"})
    assert memory.arena_max({"MALLOC_ARENA_MAX": "4"}) == "4"
    monkeypatch.setattr(memory, "glibc", lambda: None)
    assert not memory.limit_arenas(2, environ={})
    assert memory.arena_max({}) == memory.ARENA_DEFAULT == "default"  # nothing set: glibc's own


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc")
def test_limit_arenas_sets_the_limit_with_glibc(monkeypatch):
    if memory.glibc() is None:
        pytest.skip("not glibc")
    monkeypatch.setattr(memory, "_arena_set", None)
    assert memory.limit_arenas(memory.ARENA_MAX, environ={})  # mallopt returns 1 on success
    assert memory.arena_max({}) == str(memory.ARENA_MAX) == "2"
    assert memory.arena_max({"MALLOC_ARENA_MAX": "8"}) == "8"  # an environment setting is what glibc uses
