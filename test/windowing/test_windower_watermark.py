"""Windower rule 3 (the watermark, :meth:`synctva_ros.windowing.clock.SensorClock.closing_time`): a window closes
when every live camera/microphone stream has passed its end + late_s; lagging streams are waited for, stalled
and idle ones are not, and a stall of the whole process is not idleness."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.windowing.windower import UtteranceWindower

from windower_fixtures import SR, cfg, feed_audio, feed_frames, img  # noqa: E402


def test_window_waits_for_a_lagging_microphone_and_keeps_its_audio():
    """Rule 3: while the node drains a backlog (every message arrives now, at 50 s of the node clock) the
    microphone's messages come 1.4 s (sensor time) behind the camera's; the window closes on the microphone's time,
    so its audio is complete and nothing is dropped as late (issue 14: with the newest stream's time, the old rule
    and stream_wait_s 0, the chunks after 1.6 s were lost)."""
    arrive = 50.0
    n = int(round(0.02 * SR))
    for wait, complete in ((2.0, True), (0.0, False)):
        w = UtteranceWindower(cfg(late_s=0.3, stream_wait_s=wait), SR)
        for k in range(80):  # microphone: 0 .. 1.58 s
            w.add_audio(k * 0.02, np.full(n, 0.1, np.float32), SR, now=arrive)
        for t in np.arange(0.0, 3.05, 0.1):  # camera ahead: 3.0 s
            w.add_frame(float(t), img(), now=arrive)
        w.add_transcript("hello", 1.0, 2.0, True, stamp=2.0, utterance_id="u", now=arrive)
        out = w.poll(3.0, arrival=arrive)
        assert (out == []) is complete  # waits for the microphone (late_s is long past on the camera)
        for k in range(80, 150):  # the backlog drains: 1.6 .. 2.98 s
            w.add_audio(k * 0.02, np.full(n, 0.1, np.float32), SR, now=arrive)
            out += w.poll(k * 0.02, arrival=arrive)
        out += w.flush()
        (win,) = out
        assert (win.audio.size == SR + 1) is complete, win.audio.size
        assert (w.stats["late_audio"] == 0) is complete
        if complete:
            assert win.closed_at == pytest.approx(2.3)  # the first poll with the microphone past end + late_s


def test_a_stalled_or_silent_stream_is_not_waited_for():
    """A camera that stopped (unplugged) delays no window once it is stream_wait_s behind the microphone; a
    microphone that publishes only during speech delays none once it has been silent for late_s of arrival time
    while the camera delivers (Flink's idleness)."""
    w = UtteranceWindower(cfg(late_s=0.3, stream_wait_s=1.0), SR)
    feed_frames(w, 0.0, 1.0)
    feed_audio(w, 0.0, 4.0)
    w.add_transcript("still here", 2.5, 3.0, True, stamp=3.0)
    (win,) = w.poll(3.98)  # camera at 1.0 s is 2.98 s behind: stalled
    assert win.end == 3.0 and win.frames == [] and win.audio.size > 0

    w = UtteranceWindower(cfg(late_s=0.3, stream_wait_s=2.0), SR)
    n = int(round(0.02 * SR))
    for k in range(50):  # speech 0 .. 1 s, each chunk arriving 0.05 s after its stamp; then the microphone is quiet
        w.add_audio(k * 0.02, np.full(n, 0.1, np.float32), SR, now=k * 0.02 + 0.05)
    w.add_transcript("hi", 0.0, 1.0, True, stamp=1.0, now=1.1)
    out = []
    for t in np.arange(0.9, 2.0, 1 / 30):  # the camera goes on, frames arriving 0.05 s after their stamps
        w.add_frame(float(t), img(), now=float(t) + 0.05)
        out += w.poll(float(t), arrival=float(t) + 0.05)
        if out:
            break
    (win,) = out
    assert win.closed_at < 1.0 + 0.3 + 0.1  # closed on the camera's time, not held for the silent microphone


def test_a_stall_of_the_node_does_not_close_windows_by_the_clock():
    """The executor stalls for 1 s while the microphone lags the camera by 0.4 s; after the stall the poll timer
    runs before the queued messages. Nothing arrived from anyone during the stall, so no stream is idle: the
    window waits for the microphone's backlog and keeps all its audio (issue 14: every stream looked idle and the
    window closed by the clock, its last 0.4 s of audio then dropped as late)."""
    w = UtteranceWindower(cfg(late_s=0.3, stream_wait_s=2.0), SR)
    n = int(round(0.02 * SR))
    out = []
    for k in range(81):  # 0 .. 1.6 s of audio and 0 .. 2.0 s of camera delivered, arriving at 10 + stamp + 0.4
        t = k * 0.02
        w.add_audio(t, np.full(n, 0.1, np.float32), SR, now=10.0 + t + 0.4)
        if k % 5 == 0:
            w.add_frame(t + 0.4, img(), now=10.0 + t + 0.4)
        out += w.poll(t + 0.4, arrival=10.0 + t + 0.4)
    w.add_transcript("wait for me", 1.0, 1.5, True, stamp=1.5, utterance_id="u", now=12.0)
    out += w.poll(2.0, arrival=12.0)
    assert out == []
    out += w.poll(3.0, arrival=13.0)  # after the stall the timer runs first, the sensor clock 1 s on
    assert out == []  # not closed by the clock: nobody was heard during the stall
    for k in range(81, 111):  # the backlog drains: audio 1.62 .. 2.2 s, all arriving at about 13 s
        w.add_audio(k * 0.02, np.full(n, 0.1, np.float32), SR, now=13.0 + k * 1e-4)
        out += w.poll(3.0, arrival=13.0 + k * 1e-4)
    (win,) = out
    assert win.end == 1.5 and win.audio.size == int(0.5 * SR) + 1 and w.stats["late_audio"] == 0
    assert win.closed_at == 3.0
    out = w.poll(3.1, arrival=13.1)  # and a microphone that then falls silent delays nothing after late_s
    w.add_transcript("next", 2.2, 2.4, True, stamp=2.4, utterance_id="v", now=13.2)
    for i in range(1, 10):
        w.add_frame(3.0 + 0.1 * i, img(), now=13.2 + 0.1 * i)
        out += w.poll(3.0 + 0.1 * i, arrival=13.2 + 0.1 * i)
    assert [x.utterance_id for x in out] == ["v"]


def _bursty_step(w: UtteranceWindower, k: int, t: float, arrival: float, held: list[float]) -> list:
    """Step ``k`` (sensor time ``t``, arriving at ``arrival``) of a stream whose microphone chunks (20 ms) are held up
    for 0.7 s of every second (queued behind camera frames) and then arrive together, while the camera (every third
    step) and the 20 Hz poll (every second step) go on. Returns the windows polled."""
    if t % 1.0 < 0.7 - 1e-9:
        held.append(t)
    else:
        for h in held + [t]:
            w.add_audio(h, np.full(int(round(0.02 * SR)), 0.1, np.float32), SR, now=arrival)
        held.clear()
    if k % 3 == 0:
        w.add_frame(t, img(), now=arrival)
    return w.poll(t, arrival=arrival) if k % 2 == 0 else []


def test_a_microphone_delivered_in_bursts_keeps_its_audio():
    """The soaks' late audio (issue 14): the microphone's chunks are held up for 0.7 s every second (queued behind
    camera frames) and then arrive together, while the camera and the 20 Hz poll go on. After the first hold-up the
    microphone's delivery jitter makes the windower wait about 1.4 s for it instead of late_s (0.3 s), so windows
    that end inside a hold-up keep all their audio (with late_s alone they closed on the camera's time and the
    held audio was dropped as late)."""
    w = UtteranceWindower(cfg(late_s=0.3, stream_wait_s=2.0), SR)
    held: list[float] = []
    out = []
    for k in range(0, 400):  # 0 .. 8 s of sensor time; arrival = 10 s + sensor time, polls every 50 ms
        t = k * 0.02
        if k in (210, 310):  # finals of utterances [2.9, 4.2] and [4.9, 6.2], each ending inside a hold-up
            w.add_transcript("u", t - 1.3, t, True, stamp=t, utterance_id=f"u{k}", now=10.0 + t)
        out += _bursty_step(w, k, t, 10.0 + t, held)
    assert [x.utterance_id for x in out] == ["u210", "u310"]
    assert all(x.audio.size >= int(1.3 * SR) for x in out) and w.stats["late_audio"] == 0


def test_the_microphone_jitter_is_kept_across_a_time_reset():
    """A looped replay (issue 14): the transport that holds the microphone up does not change when the bag restarts,
    so the first hold-up of the new loop is waited for too (with the estimate cleared at the reset, the window ending
    inside it closed on the camera's time and its audio was dropped as late)."""
    w = UtteranceWindower(cfg(late_s=0.3, stream_wait_s=2.0), SR)
    out: list = []
    held: list[float] = []
    for loop, k0 in ((0, 0), (1, 200)):  # two loops of the same 4 s of sensor time (from 100 s); arrival goes on
        for k in range(200):
            t, arrival = 100.0 + k * 0.02, 10.0 + (k0 + k) * 0.02
            if loop == 1 and k == 13:  # an utterance [0.02, 0.25] s into the new loop, inside its first hold-up
                w.add_transcript("u", 100.02, 100.25, True, stamp=100.26, utterance_id="new", now=arrival)
            out += _bursty_step(w, k, t, arrival, held)
    assert w.stats["time_resets"] == 1
    (win,) = [x for x in out if x.utterance_id == "new"]
    assert win.audio.size >= int(0.22 * SR) and w.stats["late_audio"] == 0
