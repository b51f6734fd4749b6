"""Latency statistics of /diagnostics (no rclpy needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synctva_ros.ros.latency import LATENCY_HISTORY, LatencySnapshot, LatencyStats


def test_before_any_window():
    snap = LatencyStats().report()
    assert math.isnan(snap.last_s)
    assert snap.worst_s == 0.0 and snap.p50_s is None and snap.p95_s is None


def test_nearest_rank_percentiles_of_recent_windows():
    stats = LatencyStats()
    values = [0.01 * i for i in range(1, 101)]  # 0.01 .. 1.00 s, added in shuffled order
    for v in np.random.default_rng(0).permutation(values):
        stats.add(float(v))
    snap = stats.report()
    ordered = sorted(values)
    assert snap.p50_s == pytest.approx(ordered[50])  # sorted[n // 2]
    assert snap.p95_s == pytest.approx(ordered[95])  # sorted[int(0.95 n)]
    assert snap.worst_s == pytest.approx(1.0)


def test_p95_of_one_window_is_that_window():
    stats = LatencyStats()
    stats.add(0.25)
    assert stats.report() == LatencySnapshot(0.25, 0.25, 0.25, 0.25)


def test_worst_is_per_period_and_falls_back_to_last():
    stats = LatencyStats()
    stats.add(2.0)
    stats.add(0.5)
    first = stats.report()
    assert first.worst_s == 2.0 and first.last_s == 0.5
    second = stats.report()  # nothing published since: the last latency stands in
    assert second.worst_s == 0.5 and second.last_s == 0.5
    stats.add(0.1)
    assert stats.report().worst_s == 0.1
    assert stats.report().p50_s == 0.5  # percentiles keep the history: [0.1, 0.5, 2.0]


def test_history_is_bounded_to_the_most_recent_windows():
    stats = LatencyStats(history=4)
    for v in (9.0, 9.0, 9.0, 1.0, 2.0, 3.0, 4.0):
        stats.add(v)
    snap = stats.report()
    assert snap.p50_s == 3.0 and snap.p95_s == 4.0  # the three 9.0 s fell out
    assert snap.worst_s == 9.0  # but the period saw them
    assert LATENCY_HISTORY == 256
