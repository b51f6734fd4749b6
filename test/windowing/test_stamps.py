"""Issue 14 items 1-3: far-future, zero and negative stamps, transcript strings (rules 12-14 of the windower)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synctva_ros.config import WindowingConfig
from synctva_ros.windowing.stamps import MAX_FIELD_CHARS, effective_stamp
from synctva_ros.windowing.windower import STAT_KEYS, UtteranceWindower

SR = 16000
FAR = float(2**31 - 1)


def cfg(**kw) -> WindowingConfig:
    c = WindowingConfig(vad_enabled=False, frame_keep_hz=0.0)
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def img() -> np.ndarray:
    return np.zeros((4, 6, 3), np.uint8)


def frames(w, t0, t1, fps=10.0, now_fn=None):
    out = []
    for i in range(int(round((t1 - t0) * fps)) + 1):
        t = t0 + i / fps
        w.add_frame(t, img())
        out += w.poll(t)
    return out


def speech(t0: float, t1: float) -> list[tuple[float, np.ndarray]]:
    """20 ms chunks: a 300 Hz tone with silence around it, loud enough for WebRTC VAD."""
    n = int(0.02 * SR)
    out = []
    for k in range(int(round((t1 - t0) / 0.02))):
        t = t0 + k * 0.02
        x = 0.5 * np.sin(2 * np.pi * 300 * (np.arange(n) / SR + t)).astype(np.float32)
        out.append((t, x if (k // 50) % 2 == 0 else np.zeros(n, np.float32)))
    return out


def test_new_counters_are_stat_keys():
    for k in ("future_frames", "future_audio", "future_transcripts", "negative_stamps", "zero_stamps",
              "duplicate_transcripts", "control_chars", "truncated_fields", "stale_frames", "stale_audio",
              "stale_transcripts"):
        assert k in STAT_KEYS


def test_far_future_frame_neither_closes_the_window_early_nor_resets_later():
    w = UtteranceWindower(cfg(late_s=0.3), SR)
    assert frames(w, 100.0, 102.0) == []
    w.add_transcript("hello", 101.0, 102.0, True, stamp=102.0, utterance_id="u1")
    w.add_frame(FAR, img())
    assert w.poll(FAR) == []  # the rejected stamp's poll closes nothing the stream time has not reached
    assert w.stats["future_frames"] == 1 and w.latest_stamp == 102.0
    out = frames(w, 102.1, 103.0)
    assert [x.utterance_id for x in out] == ["u1"] and out[0].closed_at >= 102.3
    assert w.stats["time_resets"] == 0


def test_far_future_audio_is_rejected_per_modality():
    w = UtteranceWindower(cfg(), SR)
    w.add_audio(10.0, np.zeros(320, np.float32), SR)
    w.add_audio(FAR, np.zeros(320, np.float32), SR)
    w.add_audio(10.02, np.zeros(320, np.float32), SR)
    assert w.stats["future_audio"] == 1 and w.stats["time_resets"] == 0 and w.stats["audio_chunks"] == 2


def test_far_future_transcript_is_rejected_and_keeps_the_vad_fallback():
    w = UtteranceWindower(WindowingConfig(vad_enabled=True, frame_keep_hz=0.0, stt_timeout_s=1.0), SR)
    out = []
    for t, x in speech(100.0, 104.0):
        w.add_audio(t, x, SR)
        out += w.poll(t)
    before = len(out)
    assert before >= 1
    w.add_transcript("bogus", 0.0, FAR, True, stamp=FAR, utterance_id="far")
    out += w.poll(FAR)
    w.add_transcript("bogus end", 0.0, FAR, True, stamp=104.0, utterance_id="far2")
    assert w.stats["future_transcripts"] == 2 and w.pending == 0
    for t, x in speech(104.0, 110.0):
        w.add_audio(t, x, SR)
        out += w.poll(t)
    out += w.flush()
    assert len(out) > before and all(x.closed_by == "vad" for x in out)
    assert "far" not in {x.utterance_id for x in out}


def test_consistent_far_future_sensor_stamps_are_a_forward_jump():
    w = UtteranceWindower(cfg(future_tolerance_s=5.0), SR)
    frames(w, 10.0, 11.0)
    frames(w, 500.0, 500.5)  # drivers restarted much later: three frames confirm it
    s = w.stats
    assert s["future_frames"] == 2 and s["time_resets"] == 1 and w.latest_stamp == 500.5


def test_zero_stamp_is_stamped_on_arrival_and_negative_is_rejected():
    w = UtteranceWindower(cfg(late_s=0.0), SR)
    w.add_frame(0.0, img(), now=50.0)
    w.add_audio(0.0, np.zeros(160, np.float32), SR, now=50.0)
    assert w.latest_stamp == 50.0 and w.stats["zero_stamps"] == 2
    w.add_frame(-1.0, img())
    w.add_audio(-5.0, np.zeros(160, np.float32), SR)
    w.add_transcript("lost", -5.0, -5.0, True, stamp=-5.0)
    w.add_transcript("also lost", 0.0, 0.0, True, stamp=-5.0)
    assert w.stats["negative_stamps"] == 4 and w.pending == 0
    w.add_transcript("hi", 0.0, 0.0, True, stamp=0.0, now=50.5)  # 0 = unknown: on arrival
    (win,) = w.poll(50.5)
    assert win.end == 50.5 and win.start >= 0


def test_window_never_starts_before_zero():
    w = UtteranceWindower(cfg(late_s=0.0, default_window_s=3.0), SR)
    w.add_transcript("early", 0.0, 0.0, True, stamp=0.5)  # unknown bounds: 0.5 - 3 s would be negative
    (win,) = w.poll(0.5)
    assert (win.start, win.end) == (0.0, 0.5)


def test_duplicate_finals_give_one_window():
    w = UtteranceWindower(cfg(late_s=0.0), SR)
    frames(w, 1.0, 3.0)
    for _ in range(3):
        w.add_transcript("same", 1.0, 2.0, True, stamp=2.0, utterance_id="u7")
    w.add_transcript("other", 1.0, 2.0, True, stamp=2.0, utterance_id="")  # no id: never a duplicate
    w.add_transcript("other", 1.0, 2.0, True, stamp=2.0, utterance_id="")
    out = w.poll(3.0)
    assert [x.utterance_id for x in out].count("u7") == 1 and len(out) == 3
    assert w.stats["duplicate_transcripts"] == 2


def test_control_characters_stripped_and_fields_bounded():
    w = UtteranceWindower(cfg(late_s=0.0), SR)
    big = "x" * 1_000_000
    w.add_transcript("hel\x00lo\tthere\x1b", 1.0, 2.0, True, stamp=2.0, utterance_id=big, dialogue_id=big,
                     speaker_id="Mon\x00ica", language="e" * 300)
    (win,) = w.poll(2.0)
    assert win.transcript == "hello there"
    assert len(win.utterance_id) == len(win.dialogue_id) == len(win.language) == MAX_FIELD_CHARS
    assert win.speaker_id == "Monica"
    assert w.stats["control_chars"] == 1 and w.stats["truncated_fields"] == 3


def test_a_looped_replay_resets_once_per_loop_even_with_a_late_frame_of_the_old_loop():
    # issue 14 item 4: at each restart of a looped bag the audio went back first (one reset), then a last
    # frame of the old loop was accepted into the cleared clock, and the next new-loop frame reset again
    # (11 resets for 8 loops). The old loop's frame is a straggler of the old timeline: dropped, counted.
    w = UtteranceWindower(cfg(), SR)
    loop_s, loops = 30.0, 8
    for loop in range(loops):
        for k in range(int(loop_s * 10)):  # 100 ms of audio and one frame per step, in bag order
            t = k * 0.1
            w.add_audio(t, np.zeros(int(0.1 * SR), np.float32), SR)
            if loop and k == 0:
                w.add_frame(loop_s - 0.05, img())  # delivered late: the previous loop's last frame
            w.add_frame(t + 0.05, img())
            w.poll(t)
    assert w.count("time_resets") == loops - 1
    assert w.count("stale_frames") == loops - 1 and w.count("future_frames") == 0


CHUNK = np.zeros(int(0.1 * SR), np.float32)


def looped_replay(w: UtteranceWindower, loop_s: float, loops: int, late_frames: int = 0, late_audio: int = 0,
                  now: bool = False) -> list:
    """A bag of ``loop_s`` seconds (100 ms audio chunks, 10 fps camera) replayed ``loops`` times; at each
    restart the old loop's last ``late_frames`` frames arrive after the new loop's first audio chunk, or
    its last ``late_audio`` audio chunks after the new loop's first frame (queued behind it)."""
    out = []
    for loop in range(loops):
        for k in range(int(round(loop_s * 10))):
            t = k * 0.1
            if loop and k == 0 and late_audio:
                w.add_frame(t + 0.05, img())
                for j in range(late_audio, 0, -1):
                    w.add_audio(loop_s - 0.1 * j, CHUNK, SR)
                w.add_audio(t, CHUNK, SR)
                out += w.poll(t)
                continue
            w.add_audio(t, CHUNK, SR)
            if loop and k == 0:
                for j in range(late_frames - 1, -1, -1):
                    w.add_frame(loop_s - 0.05 - 0.1 * j, img())
            w.add_frame(t + 0.05, img())
            out += w.poll(t + 0.05)
            if k == int(round(loop_s * 10)) // 2:  # one utterance per loop, the same id every loop
                w.add_transcript("again", t - 1.0, t - 0.2, True, stamp=t, utterance_id="u-loop")
    return out


@pytest.mark.parametrize("loop_s", [2.5, 4.0, 9.5, 10.5, 25.0])
@pytest.mark.parametrize("late", [dict(late_frames=1), dict(late_frames=4), dict(late_audio=4)])
def test_one_reset_per_restart_whatever_the_loop_length(loop_s, late):
    # issue 14: loops shorter than future_tolerance_s (10 s) reset twice per restart (the old loop's late
    # frame was accepted into the cleared clock, then the next new-loop frame went back again), and any
    # loop with 3 or more late messages of one stream reset three times (a "forward jump" back to the old
    # loop, then back again). One time jump, one reset: the old loop's stragglers are dropped and counted.
    loops = 5
    w = UtteranceWindower(cfg(late_s=0.1), SR)
    out = looped_replay(w, loop_s, loops, **late)
    out += w.flush()
    n_late = late.get("late_frames", 0) + late.get("late_audio", 0)
    assert w.count("time_resets") == loops - 1
    assert w.count("stale_frames") + w.count("stale_audio") == (loops - 1) * n_late
    assert w.count("future_frames") == w.count("future_audio") == 0
    assert [x.utterance_id for x in out] == ["u-loop"] * loops  # one window per loop, none deduplicated
    assert [x.session for x in out] == list(range(loops))


def test_late_transcript_of_the_old_loop_is_not_windowed_in_the_new_one():
    # a 6 s loop (shorter than future_tolerance_s): the old loop's last final transcript arrives after the
    # restart; accepted into the new timeline, it would wait for the new loop to reach its end, be cut from the
    # new loop's data, and make the new loop's own transcript of that utterance a duplicate. It gets its window
    # from the old loop's held buffers instead (rule 13c), with the old session; with straggler_s 0 it is dropped.
    for hold, first in ((5.0, [("u5", 0, 1.0)]), (0.0, [])):
        w = UtteranceWindower(cfg(late_s=0.1, straggler_s=hold), SR)
        for t in np.arange(0.0, 6.0, 0.1):
            w.add_audio(float(t), CHUNK, SR)
        w.add_audio(0.0, CHUNK, SR)  # restart
        w.add_transcript("late", 4.5, 5.5, True, stamp=5.6, utterance_id="u5")
        assert w.count("time_resets") == 1 and w.pending == 0 and w.count("stale_transcripts") == 1
        assert w.count("straggler_windows") == len(first)
        out = []
        for t in np.arange(0.1, 6.0, 0.1):
            w.add_audio(float(t), CHUNK, SR)
            if abs(t - 5.6) < 1e-6:
                w.add_transcript("late", 4.5, 5.5, True, stamp=5.6, utterance_id="u5")
            out += w.poll(float(t))
        assert [(x.utterance_id, x.session, round(x.audio.size / SR, 2)) for x in out] == first + [("u5", 1, 1.0)]
        assert w.count("duplicate_transcripts") == 0


def test_a_stream_ahead_on_the_new_timeline_is_kept_once_it_is_no_straggler():
    # after a restart, a stamp within time_reset_s of the new stream time is accepted (its stream's next
    # message cannot reset), and a stream that delivered one is on the new timeline: rule 13b is over for it
    w = UtteranceWindower(cfg(), SR)
    for k in range(300):
        w.add_audio(k * 0.1, CHUNK, SR)
        w.add_frame(k * 0.1 + 0.05, img())
    w.add_audio(0.0, CHUNK, SR)  # restart at 0 from 29.9 s
    w.add_frame(1.5, img())  # 1.5 s ahead of the audio: accepted (within time_reset_s = 2 s)
    w.add_frame(4.0, img())  # the frame stream is on the new timeline: a forward gap, not a straggler
    w.add_frame(29.0, img())
    s = w.stats
    assert s["time_resets"] == 1 and s["stale_frames"] == 0 and s["frames"] == 300 + 2
    assert s["future_frames"] == 1  # 29 s is beyond future_tolerance_s of the stream time 4.0 s


def test_zero_stamp_frames_are_thinned_by_their_arrival_time():
    # issue 14 item 2: a camera driver that leaves the stamp at 0 at 30 fps; frame_keep_hz = 10 must keep
    # about 10 of them per second of arrival time (the raw stamp 0 was never thinned: all 30 decoded)
    w = UtteranceWindower(cfg(frame_keep_hz=10.0), SR)
    for i in range(90):  # 3 s at 30 fps
        w.add_frame(0.0, img(), now=50.0 + i / 30)
    assert w.count("frames") == 30 and w.count("thinned_frames") == 60 and w.count("zero_stamps") == 90
    w2 = UtteranceWindower(cfg(frame_keep_hz=10.0), SR)  # thin_frame before decoding (the node) agrees
    kept = []
    for i in range(90):
        now = 50.0 + i / 30
        if not w2.thin_frame(0.0, now=now):
            w2.add_frame(0.0, img(), now=now)
            kept.append(now)
    assert len(kept) == 30 and w2.count("frames") == 30 and w2.count("thinned_frames") == 60
    assert w2.count("zero_stamps") == 90 and np.diff(kept).min() >= 0.095


@pytest.mark.parametrize("stamp, arrival, expected", [
    (0.0, 12.5, 12.5),    # unknown: stamped on arrival
    (-0.0, 12.5, 12.5),
    (0, 7, 7.0),          # a float either way
    (3.25, 12.5, 3.25),   # a known stamp is kept, whatever the arrival
    (-1.0, 12.5, -1.0),   # negative: not corrected here (StampGuard rejects it)
    (0.0, None, 0.0),     # no arrival time: time 0
    (3.25, None, 3.25),
])
def test_effective_stamp_is_the_header_stamp_or_the_arrival_time_for_0(stamp, arrival, expected):
    got = effective_stamp(stamp, arrival)
    assert got == expected and isinstance(got, float if arrival is not None and stamp == 0 else type(stamp))


def test_effective_stamp_leaves_non_finite_stamps_to_the_caller():
    assert math.isnan(effective_stamp(float("nan"), 5.0)) and effective_stamp(float("inf"), 5.0) == float("inf")


def test_the_windower_places_a_0_stamp_at_effective_stamp():
    """The windower's own rule 12 (StampGuard.resolve, thin_frame) is effective_stamp."""
    w = UtteranceWindower(cfg(default_window_s=1.0), SR)
    w.add_frame(0.0, img(), now=50.0)
    w.add_audio(0.0, np.zeros(320, np.float32), SR, now=50.0)
    w.add_transcript("hi", 0.0, 0.0, True, stamp=50.5)
    (win,) = w.flush()
    assert [f.stamp for f in win.frames] == [effective_stamp(0.0, 50.0)] and win.audio_start == 50.0
    assert w.count("zero_stamps") == 2
