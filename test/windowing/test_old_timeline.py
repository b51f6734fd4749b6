"""Rule 13c (windowing.old_timeline): after sensor time went back, the old timeline's late final transcripts still
make their windows from its held buffers, in session order, for straggler_s of new sensor time."""

from __future__ import annotations

import math

import numpy as np

from synctva_ros.windowing.buffers import AudioBuffer, FrameBuffer
from synctva_ros.windowing.old_timeline import OldTimeline
from synctva_ros.windowing.windower import UtteranceWindower

from windower_fixtures import SR, cfg, img  # noqa: E402

CHUNK = np.full(int(0.02 * SR), 0.1, np.float32)
IDS = {"utterance_id": "u", "dialogue_id": "d", "language": "en", "speaker_id": "s"}


def one_loop(w: UtteranceWindower, loop_s: float, upto: float | None = None) -> list:
    """A loop of 20 ms audio chunks and a 10 fps camera from 0 to ``upto`` (default ``loop_s``) seconds."""
    out = []
    for k in range(int(round((loop_s if upto is None else upto) / 0.02))):
        t = k * 0.02
        w.add_audio(t, CHUNK, SR)
        if k % 5 == 0:
            w.add_frame(t, img())
        out += w.poll(t)
    return out


def test_hold_keeps_the_buffers_for_hold_s_of_new_time_and_rescues_an_utterance_once():
    frames, audio = FrameBuffer(30.0, 600), AudioBuffer(30.0, SR)
    audio.insert(9.0, CHUNK)
    old = OldTimeline()
    old.hold(frames, audio, 3, 9.02, new_time=0.0, hold_s=0.0)
    assert not old.live(0.0)  # 0 keeps nothing
    old.hold(frames, audio, 3, 9.02, new_time=0.5, hold_s=2.0)
    assert old.live(2.5) and old.session == 3
    assert old.add_audio(9.02, CHUNK) and not old.add_audio(9.02, CHUNK)  # a duplicate is not kept twice
    p = old.straggler("hi", 8.0, 9.0, 9.1, IDS, 0.9, cfg(), 2.5)
    assert (p.start, p.end, p.utterance_id, p.confidence) == (8.0, 9.0, "u", 0.9)
    assert old.straggler("hi", 8.0, 9.0, 9.1, IDS, 0.9, cfg(), 2.5) is None  # once per utterance id
    assert old.straggler("  ", 8.0, 9.0, 9.1, {**IDS, "utterance_id": "v"}, 0.9, cfg(), 2.5) is None
    assert not old.live(2.51) and old.frames is None and old.audio is None  # let go after hold_s


def test_old_loop_stragglers_fill_the_held_window_and_the_new_timeline_is_untouched():
    """The bag's last utterance: its final transcript and its last 0.2 s of audio arrive after the restart (the
    camera's first frame of the new loop came first). The window is built from the old loop's buffers with those
    chunks (complete audio, the old session), before any window of the new loop; the new loop's data never enters
    it and the held chunks never enter the new loop."""
    w = UtteranceWindower(cfg(late_s=0.3), SR)
    one_loop(w, 6.0, upto=5.8)
    w.add_frame(0.0, img())  # restart: time goes back on the camera
    for k in range(290, 300):  # the microphone's last 0.2 s of the old loop, queued behind that frame
        w.add_audio(k * 0.02, CHUNK, SR)
    w.add_transcript("last words", 4.5, 5.9, True, stamp=5.95, utterance_id="u-last", dialogue_id="d")
    assert w.count("stale_audio") == 10 and w.count("stale_transcripts") == 1 and w.count("straggler_windows") == 1
    out = w.poll(0.0)
    (win,) = out
    assert (win.utterance_id, win.session, win.start, win.end) == ("u-last", 0, 4.5, 5.9)
    assert win.audio.size == round(1.4 * SR) + 1 and np.all(win.audio == np.float32(0.1))  # no hole at the end
    assert len(win.frames) == 13 and all(4.5 <= f.stamp <= 5.9 for f in win.frames)
    assert w.session == 1 and w.buffered_audio_s == 0.0 and w.buffered_frames == 1  # the new timeline: its frame


def test_no_straggler_window_after_the_new_session_emitted_one_or_after_straggler_s():
    w = UtteranceWindower(cfg(late_s=0.1, straggler_s=5.0), SR)
    one_loop(w, 10.0)
    one_loop(w, 10.0, upto=2.0)  # the new loop: a reset at its start
    w.add_transcript("first of the new loop", 0.5, 1.0, True, stamp=1.0, utterance_id="n1")
    out = []
    for k in range(100, 110):
        w.add_audio(k * 0.02, CHUNK, SR)
        out += w.poll(k * 0.02)
    assert [x.session for x in out] == [1]  # the new session emitted a window
    w.add_transcript("too late", 9.0, 9.9, True, stamp=9.95, utterance_id="o1")
    assert w.count("straggler_windows") == 0 and w.count("stale_transcripts") == 1 and w.poll(2.2) == []

    w = UtteranceWindower(cfg(late_s=0.1, straggler_s=1.0), SR)
    one_loop(w, 10.0)
    one_loop(w, 10.0, upto=1.5)  # 1.5 s of the new loop: past straggler_s, the old buffers are let go
    w.add_transcript("too late", 9.0, 9.9, True, stamp=9.95, utterance_id="o1")
    assert w.count("straggler_windows") == 0 and w.count("stale_transcripts") == 1
    assert math.isclose(w.buffered_audio_s, 1.5, abs_tol=0.03)
