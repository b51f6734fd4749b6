"""windowing.clock: newest sensor time per stream and time-reset detection (rule 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synctva_ros.windowing.clock import SensorClock, finite_time


@pytest.mark.parametrize("x, ok", [(1.0, True), (0, True), ("2.5", True), (np.float32(3), True), (math.nan, False),
                                   (math.inf, False), (None, False), ("x", False), ([1.0], False)])
def test_finite_time(x, ok):
    assert finite_time(x) is ok


def test_newest_time_per_stream_never_goes_back():
    c = SensorClock()
    assert c.latest is None and c.last("frame") is None
    c.advance("frame", 5.0)
    c.advance("frame", 4.0)
    c.advance("audio", 7.0)
    assert c.last("frame") == 5.0 and c.last("audio") == 7.0 and c.latest == 7.0
    c.clear()
    assert c.latest is None and c.last("audio") is None


def test_went_back_only_beyond_the_tolerance_and_per_stream():
    c = SensorClock()
    assert not c.went_back("frame", -100.0, 2.0)  # a stream never seen cannot go back
    c.advance("frame", 10.0)
    assert not c.went_back("frame", 8.0, 2.0) and c.went_back("frame", 7.99, 2.0)
    assert not c.went_back("audio", 0.0, 2.0)
    c.advance("transcript", 50.0)
    assert not c.went_back("frame", 9.0, 2.0)  # another stream's newer time does not matter


def test_sensor_latest_is_the_newest_camera_or_audio_time_only():
    c = SensorClock()
    assert c.sensor_latest is None
    c.advance("transcript", 50.0)
    assert c.sensor_latest is None and c.latest == 50.0
    c.advance("audio", 3.0)
    assert c.sensor_latest == 3.0
    c.advance("frame", 4.0)
    assert c.sensor_latest == 4.0
    c.advance("audio", 6.0)
    assert c.sensor_latest == 6.0
