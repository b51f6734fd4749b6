"""Issue 14 items 1-3: far-future, zero and negative stamps, transcript strings (rules 12-14 of the windower)."""

from __future__ import annotations

import numpy as np

from synctva_ros.config import WindowingConfig
from synctva_ros.windowing.stamps import MAX_FIELD_CHARS
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
              "duplicate_transcripts", "control_chars", "truncated_fields"):
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
    # (11 resets for 8 loops). The old loop's frame is now far ahead of the stream time: dropped, counted.
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
    assert w.count("future_frames") == loops - 1
