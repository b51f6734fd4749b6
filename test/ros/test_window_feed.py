"""WindowFeed drives a real UtteranceWindower as the node's callbacks do (no rclpy needed)."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.config import WindowingConfig
from synctva_ros.ros.counters import Counters
from synctva_ros.ros.window_feed import WindowFeed
from synctva_ros.windowing.windower import UtteranceWindower

RATE = 16000
CHUNK_S = 0.1


class Feed:
    """A feed with its windower, counters, submitted windows and warnings."""

    def __init__(self, windower: UtteranceWindower | None = None) -> None:
        self.windows: list = []
        self.warnings: list[str] = []
        self.counters = Counters(self.warnings.append)
        self.windower = windower or UtteranceWindower(WindowingConfig(), sample_rate=RATE)
        self.feed = WindowFeed(self.windower, self.counters, submit=self.windows.append)

    def audio(self, t0: float, t1: float) -> None:
        for t in np.arange(t0, t1 - 1e-9, CHUNK_S):
            t = float(round(t, 6))
            chunk = np.full(int(CHUNK_S * RATE), 0.01, dtype=np.float32)
            self.feed.add("audio", t, lambda w, t=t, chunk=chunk: w.add_audio(t, chunk, RATE))

    def final(self, start: float, end: float, text: str = "hello there") -> None:
        self.feed.add("transcript", end, lambda w: w.add_transcript(text=text, start=start, end=end, is_final=True,
                                                                    stamp=end, utterance_id=f"u{start:g}"))


def test_a_final_transcript_closes_a_window_after_late_s_of_sensor_time():
    f = Feed()
    f.audio(100.0, 102.0)
    f.final(100.0, 102.0)
    assert f.windows == []  # late_s not yet passed in sensor time
    f.audio(102.0, 102.2)
    assert f.windows == []
    f.audio(102.2, 102.5)  # a message stamped >= 102.3 polls it out
    assert len(f.windows) == 1
    w = f.windows[0]
    assert (w.start, w.end, w.utterance_id) == (pytest.approx(100.0), pytest.approx(102.0), "u100")
    assert f.counters.snapshot() == {"audio_in": 25, "transcript_in": 1, "windows": 1}


def test_the_poll_timer_closes_the_last_window():
    f = Feed()
    f.audio(100.0, 101.0)
    f.final(100.0, 101.0)
    f.feed.poll(101.2)
    assert f.windows == []
    f.feed.poll(101.3)  # node clock (e.g. /clock of a replay) past end + late_s
    assert len(f.windows) == 1


def test_flush_submits_the_pending_windows():
    f = Feed()
    f.audio(100.0, 101.0)
    f.final(100.0, 101.0)
    f.feed.flush()
    assert [w.utterance_id for w in f.windows] == ["u100"] and f.counters.get("windows") == 1


def test_time_reset_starts_the_next_session_once():
    f = Feed()
    f.audio(100.0, 101.0)
    assert f.windower.session == 0
    f.audio(10.0, 10.5)  # a bag restarted: sensor time went back by far more than time_reset_s
    assert f.windower.session == 1 and f.windower.count("time_resets") == 1


def test_out_of_order_messages_are_warned_about_throttled():
    f = Feed()
    f.audio(100.0, 100.5)
    f.audio(101.0, 101.2)  # a gap of 0.5 s, then it arrives late:
    f.audio(100.5, 100.6)  # older than the previous chunk, within the buffer
    f.audio(100.7, 100.8)
    assert f.windower.count("out_of_order") == 2 and f.windower.count("duplicates") == 0
    warned = [w for w in f.warnings if "windower.out_of_order" in w]
    assert warned == ["audio at 100.500 s: stamp older than the previous message of the stream (inserted in order) "
                      "[windower.out_of_order: 1 so far]"]
    assert f.windower.session == 0


def test_thinned_frames_are_counted_and_never_added():
    f = Feed()
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    assert not f.feed.thin_frame(100.0)
    f.feed.add("image", 100.0, lambda w: w.add_frame(100.0, frame))
    assert f.feed.thin_frame(100.033)  # 30 fps camera, frame_keep_hz 10
    assert f.feed.thin_frame(100.066)
    assert not f.feed.thin_frame(100.1)
    assert f.counters.snapshot() == {"image_in": 3}
    assert f.windower.count("thinned_frames") == 2


def test_zero_stamp_frames_are_thinned_and_polled_at_their_arrival_time():
    # issue 14 item 2: the node hands the raw header stamp and its clock; a 0 stamp is "stamped on arrival",
    # for the thinning too (raw 0 was never thinned: every frame of a 30 fps camera was decoded)
    f = Feed()
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    decoded = 0
    for i in range(30):  # one second of a 30 fps camera whose driver leaves the stamp at 0
        now = 100.0 + i / 30
        if not f.feed.thin_frame(0.0, now):
            f.feed.add("image", 0.0, lambda w, now=now: w.add_frame(0.0, frame, now=now), now)  # as the node
            decoded += 1
    assert decoded == 10 and f.windower.count("thinned_frames") == 20 and f.windower.count("zero_stamps") == 30
    assert f.counters.get("image_in") == 30
    f.final(100.2, 100.5)
    assert f.windows == [] and f.feed.thin_frame(0.0, 100.95)  # thinned; its poll at 100.95 s closes the window
    (win,) = f.windows
    assert [round(fr.stamp, 3) for fr in win.frames] in ([100.2, 100.3, 100.4, 100.5], [100.3, 100.4, 100.5])


def test_zero_stamp_messages_are_polled_at_their_arrival_time():
    """``add(stream, 0.0, ..., arrival)`` polls at ``arrival`` (effective_stamp), as the node's callbacks do: a
    microphone without stamps closes the window once its arrival time passes the end + late_s."""
    f = Feed()
    f.final(100.0, 100.5)
    chunk = np.full(int(CHUNK_S * RATE), 0.01, dtype=np.float32)
    f.feed.add("audio", 0.0, lambda w: w.add_audio(0.0, chunk, RATE, now=100.7), 100.7)
    assert f.windows == []  # polled at 100.7 s: before 100.5 + late_s (0.3 s)
    f.feed.add("audio", 0.0, lambda w: w.add_audio(0.0, chunk, RATE, now=100.9), 100.9)
    assert len(f.windows) == 1 and f.counters.get("audio_in") == 2
    assert f.windower.count("zero_stamps") == 2


def test_value_errors_of_the_windower_are_rejected_per_stream():
    f = Feed()

    def bad(w: UtteranceWindower) -> None:
        raise ValueError("negative sample rate")

    f.feed.add("audio", 100.0, bad)
    assert f.counters.snapshot() == {"bad_audio": 1}
    assert f.warnings == ["audio rejected by the windower: negative sample rate [bad_audio: 1 so far]"]


class _PollFails(UtteranceWindower):
    def poll(self, now: float, arrival: float | None = None) -> list:
        raise RuntimeError("broken clock")


def test_a_failing_poll_is_counted_not_raised():
    f = Feed(_PollFails(WindowingConfig(), sample_rate=RATE))
    f.audio(100.0, 100.2)
    f.feed.poll(101.0)
    assert f.counters.get("windower_errors") == 3 and f.counters.get("audio_in") == 2
    assert f.warnings == ["windower poll failed: RuntimeError: broken clock [windower_errors: 1 so far]"]
