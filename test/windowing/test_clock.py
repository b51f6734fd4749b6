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


def test_closing_time_waits_for_a_lagging_stream_but_not_a_stalled_or_idle_one():
    c = SensorClock()
    assert c.closing_time(10.0, 2.0, 0.3) == 10.0  # no sensor stream yet: the poll's time
    c.advance("transcript", 9.0)
    assert c.closing_time(10.0, 2.0, 0.3) == 10.0  # transcripts are never waited for
    for stream, t in (("frame", 10.0), ("audio", 9.2)):
        c.advance(stream, t, arrival=20.0)            # both arrived just now (a backlog being drained)
    assert c.closing_time(10.0, 2.0, 0.3) == 9.2   # the microphone is 0.8 s behind: its time
    assert c.closing_time(10.0, 0.0, 0.3) == 10.0  # 0: the newest stream's time (the old rule)
    assert c.closing_time(11.5, 2.0, 0.3) == 10.0  # the microphone is 2.3 s behind: stalled; the camera is waited for
    assert c.closing_time(11.0, 2.0, 0.3) == 9.2   # both within 2 s: the older one
    assert c.closing_time(12.0, 2.0, 0.3) == 12.0  # both 2 s or more behind: not waited for
    assert c.closing_time(9.0, 2.0, 0.3) == 9.0    # streams ahead of the poll never raise it
    assert c.closing_time(10.0, 2.0, 0.3, arrival=20.2) == 9.2   # the poll's own arrival 0.2 s later: not idle yet
    assert c.closing_time(10.0, 2.0, 0.3, arrival=20.45) == 10.0  # nothing for 0.45 s: both idle
    c.clear()
    for stream, t in (("frame", 10.0), ("audio", 9.2)):
        c.advance(stream, t, arrival=20.0)
    c.advance("frame", 10.0, arrival=20.2)         # the camera delivers, the microphone is silent for 0.2 s
    assert c.closing_time(10.0, 2.0, 0.3) == 9.2 and c.closing_time(10.0, 2.0, 0.1) == 10.0
    c.clear()
    assert c.closing_time(10.0, 2.0, 0.3) == 10.0


def test_a_stall_of_everything_is_not_idleness():
    """After a gap of more than idle_s in which nothing arrived at all (the executor stalled; the poll timer runs
    before the queued messages) no stream is idle until each had idle_s of arrival time to deliver."""
    c = SensorClock()
    for k in range(10):  # camera and microphone delivering every 0.05 s, polled as they come
        c.advance("frame", 5.0 + k * 0.05, arrival=20.0 + k * 0.05, idle_s=0.3)
        c.advance("audio", 4.9 + k * 0.05, arrival=20.0 + k * 0.05, idle_s=0.3)
        assert c.closing_time(5.0 + k * 0.05, 2.0, 0.3, arrival=20.0 + k * 0.05) == pytest.approx(4.9 + k * 0.05)
    assert c.closing_time(6.4, 2.0, 0.3, arrival=21.45) == pytest.approx(5.35)  # 1 s stall: the microphone's time
    c.advance("frame", 5.5, arrival=21.6, idle_s=0.3)  # the backlog: the camera first
    assert c.closing_time(6.4, 2.0, 0.3, arrival=21.7) == pytest.approx(5.35)  # 0.24 s since the stall ended
    assert c.closing_time(6.4, 2.0, 0.3, arrival=21.8) == pytest.approx(5.5)  # the microphone idle now, not the camera
    c.advance("audio", 6.0, arrival=21.85, idle_s=0.3)
    assert c.closing_time(6.4, 2.0, 0.3, arrival=21.86) == pytest.approx(5.5)
    # idle_s 0 waits for nothing silent: no stall rule either
    c.clear()
    c.advance("frame", 5.0, arrival=20.0, idle_s=0.0)
    assert c.closing_time(6.0, 2.0, 0.0, arrival=25.0) == 6.0


def _deliver(c: SensorClock, stream: str, t0: float, a0: float, n: int, dt: float = 0.02) -> None:
    """``n`` messages of ``stream`` stamped every ``dt`` from ``t0``, arriving every ``dt`` from ``a0``."""
    for k in range(n):
        c.advance(stream, t0 + k * dt, arrival=a0 + k * dt, idle_s=0.3)


def _idle_after(c: SensorClock, stream: str, now: float, since: float) -> float:
    """Seconds of silence after which polls every 50 ms from ``since`` stop waiting for ``stream``."""
    last = c.last(stream)
    for k in range(1, 100):
        if c.closing_time(now, 2.0, 0.3, arrival=since + 0.05 * k) != last:
            return 0.05 * k
    return math.inf


def test_a_stream_delivered_late_before_gets_longer_before_it_is_idle():
    """A microphone whose chunks were held up once (0.6 s of arrival for 0.02 s of audio: queued behind camera frames,
    a simulated clock that jumped) is not idle after 0.3 s of silence but after twice that delay (issue 14's late
    audio in the soaks)."""
    c = SensorClock()
    _deliver(c, "frame", 0.0, 10.0, 100)
    _deliver(c, "audio", 0.0, 10.0, 50)                   # 0 .. 0.98 s on time
    _deliver(c, "audio", 1.0, 11.58, 20)                  # then one chunk 0.58 s late, and on
    assert c.jitter("audio") == pytest.approx(0.58 * 0.5 ** (0.38 / 10), abs=1e-6)  # decayed to its last arrival
    assert c.jitter("frame") == pytest.approx(0.0, abs=1e-9)
    # the camera delivers up to 11.98 s of arrival, the microphone's last chunk (1.38 s) arrived at 11.96 s; the poll
    # timer runs every 50 ms (20 Hz, as in the node) and the microphone counts as idle only ~2 x 0.55 s later
    assert _idle_after(c, "audio", 2.0, 11.96) == pytest.approx(1.1, abs=0.06)  # 2 x 0.53 s (decayed 0.58)
    before = c.jitter("audio", at=12.0)
    c.clear()  # a time reset: the transport is the same, its estimate is kept (decaying by arrival time)
    assert c.jitter("audio", at=12.0) == before > 0 and c.last("audio") is None


def test_after_a_clear_a_late_stream_is_waited_for_from_the_first_message_but_not_forever():
    """A bag loop: the camera's first frames of the new timeline arrive, the microphone (0.58 s late before the
    clear) has not delivered yet: windows wait for it from the first frame on, for about twice its delay."""
    c = SensorClock()
    _deliver(c, "frame", 0.0, 10.0, 100)
    _deliver(c, "audio", 0.0, 10.0, 50)
    _deliver(c, "audio", 1.0, 11.58, 20)
    c.clear()
    _deliver(c, "frame", 100.0, 12.0, 10)  # 100.0 .. 100.18 s of the new timeline, arrived 12.0 .. 12.18 s
    assert c.closing_time(100.18, 2.0, 0.3, arrival=12.2) == 100.0  # held at the new timeline's start
    waited = next(k * 0.05 for k in range(1, 100) if c.closing_time(100.18, 2.0, 0.3, arrival=12.0 + k * 0.05) != 100.0)
    # then idle (twice the estimate, decayed to that poll): nobody waits forever
    assert waited == pytest.approx(2 * c.jitter("audio", at=12.0 + waited), abs=0.06) and waited < 2.0
    fresh = SensorClock()  # a stream never late: not waited for before its first message (as before)
    _deliver(fresh, "frame", 100.0, 12.0, 10)
    assert fresh.closing_time(100.18, 2.0, 0.3, arrival=12.2) == 100.18


def test_a_microphone_that_pauses_keeps_the_short_idleness():
    """A microphone that publishes only while someone speaks: its stamps jump with its arrivals (no delivery delay),
    so its silence counts after idle_s as before."""
    c = SensorClock()
    _deliver(c, "audio", 0.0, 10.0, 50)
    _deliver(c, "audio", 4.0, 14.0, 50)  # 3 s of silence between utterances, stamps 3 s on too
    assert c.jitter("audio") == pytest.approx(0.0, abs=1e-9)
    assert _idle_after(c, "audio", 5.6, 14.98) == pytest.approx(0.35)  # the first poll past idle_s, as before


def test_delivery_jitter_decays_and_is_bounded_by_the_wait():
    c = SensorClock()
    _deliver(c, "audio", 0.0, 10.0, 10)
    _deliver(c, "frame", 0.0, 10.0, 100, dt=0.05)  # the camera goes on: not a stall of everything
    _deliver(c, "audio", 0.2, 15.0, 10)  # 4.8 s late once: 2 x 4.8 s is more than stream_wait_s
    assert c.jitter("audio") == pytest.approx(4.8 * 0.5 ** (0.18 / 10), abs=1e-6)
    assert _idle_after(c, "audio", 1.0, 15.18) == pytest.approx(2.05)  # stream_wait_s bounds it
    assert c.jitter("audio", at=45.0) == pytest.approx(4.8 / 8, abs=1e-6)  # three half-lives later
