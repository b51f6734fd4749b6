"""windowing.counters: one counter per STAT_KEYS entry; warnings rate-limited per counter."""

from __future__ import annotations

import logging

import pytest

from synctva_ros.windowing.counters import STAT_KEYS, WindowerCounters


def test_counters_start_at_zero_and_know_only_stat_keys():
    c = WindowerCounters()
    assert all(c[k] == 0 for k in STAT_KEYS) and len(set(STAT_KEYS)) == len(STAT_KEYS)
    c.add("frames")
    c.add("gaps", 3)
    assert (c["frames"], c["gaps"]) == (1, 3)
    with pytest.raises(KeyError):
        c.add("no_such_counter")
    c.clear()
    assert c["frames"] == c["gaps"] == 0


def test_warnings_are_logged_five_times_then_every_thousandth(caplog):
    c = WindowerCounters()
    with caplog.at_level(logging.WARNING, logger="synctva_ros.windowing"):
        for i in range(2000):
            c.warn("late_frames", "frame at %.3f s is late", i / 10)
    assert c["late_frames"] == 2000
    msgs = [r.getMessage() for r in caplog.records if r.name == "synctva_ros.windowing"]
    assert msgs[0] == "frame at 0.000 s is late (late_frames #1)"
    assert [m.rsplit("#", 1)[1] for m in msgs] == ["1)", "2)", "3)", "4)", "5)", "1000)", "2000)"]
    assert msgs[-1] == "frame at 199.900 s is late (late_frames #2000)"
