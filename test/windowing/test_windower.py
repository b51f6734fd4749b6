"""UtteranceWindower rules (module docstring of synctva_ros.windowing.windower), unit and property tests."""

from __future__ import annotations

import logging
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synctva_ros.windowing.windower import STAT_KEYS, UtteranceWindower

from windower_fixtures import SR, cfg, feed_audio, feed_frames, img  # noqa: E402


def test_final_transcript_closes_window_with_frames_and_audio():
    w = UtteranceWindower(cfg(late_s=0.3), SR)
    feed_frames(w, 0.0, 3.0)
    feed_audio(w, 0.0, 3.0)
    w.add_transcript("hello there", 1.0, 2.0, is_final=False, stamp=1.5)  # partial: ignored
    assert w.poll(10.0) == []
    w.add_transcript("hello there", 1.0, 2.0, is_final=True, stamp=2.1, utterance_id="u1", dialogue_id="d",
                     language="en", confidence=0.9, speaker_id="Monica")
    assert w.poll(2.29) == []  # waits late_s after the end
    (win,) = w.poll(2.3)
    assert (win.start, win.end, win.transcript, win.closed_by) == (1.0, 2.0, "hello there", "transcript")
    assert [f.stamp for f in win.frames] == pytest.approx([1.0 + i / 10 for i in range(11)])
    assert win.audio_start == pytest.approx(1.0)
    assert win.audio.size == SR + 1 and win.audio.dtype == np.float32
    assert (win.utterance_id, win.dialogue_id, win.language, win.speaker_id) == ("u1", "d", "en", "Monica")
    assert win.stt_confidence == pytest.approx(0.9)
    assert win.closed_at == 2.3 and win.present == {"text": True, "audio": True, "visual": True}
    s = w.stats
    assert set(STAT_KEYS) <= set(s)
    assert (s["transcripts"], s["partial_transcripts"], s["windows"]) == (2, 1, 1)
    assert w.poll(100.0) == []


def test_unknown_end_uses_stamp_and_default_start():
    w = UtteranceWindower(cfg(default_window_s=1.5), SR)
    w.add_transcript("hi", 0.0, 0.0, True, stamp=5.0)
    (win,) = w.flush()
    assert (win.start, win.end) == (3.5, 5.0)
    assert w.stats["unknown_end"] == 1 and w.stats["unknown_start"] == 1


def test_start_after_end_is_unknown():
    w = UtteranceWindower(cfg(default_window_s=2.0), SR)
    w.add_transcript("hi", 9.0, 5.0, True, stamp=5.2)
    (win,) = w.flush()
    assert (win.start, win.end) == (3.0, 5.0)


def test_clip_to_max_window_and_widen_to_min_window():
    w = UtteranceWindower(cfg(max_window_s=2.0, min_window_s=0.5), SR)
    w.add_transcript("long", 1.0, 10.0, True, stamp=10.0, utterance_id="long")
    w.add_transcript("short", 10.0, 10.1, True, stamp=10.2, utterance_id="short")
    wins = {x.utterance_id: x for x in w.flush()}
    assert (wins["long"].start, wins["long"].end) == (8.0, 10.0)
    assert wins["short"].start == pytest.approx(9.6) and wins["short"].end == 10.1
    assert w.stats["clipped_windows"] == 1 and w.stats["widened_windows"] == 1


def test_empty_transcript_makes_no_window():
    w = UtteranceWindower(cfg(), SR)
    w.add_transcript("   ", 1.0, 2.0, True, stamp=2.0)
    w.add_transcript("", 1.0, 2.0, True, stamp=2.0)
    assert w.poll(100.0) == [] and w.flush() == []
    assert w.stats["empty_transcripts"] == 2


def test_overlapping_transcripts_each_get_a_window_in_end_order():
    w = UtteranceWindower(cfg(), SR)
    feed_frames(w, 0.0, 4.0)
    w.add_transcript("b", 1.5, 3.0, True, stamp=3.0, utterance_id="b")
    w.add_transcript("a", 1.0, 2.5, True, stamp=3.0, utterance_id="a")
    wins = w.poll(10.0)
    assert [x.utterance_id for x in wins] == ["a", "b"]
    assert {f.stamp for f in wins[0].frames} & {f.stamp for f in wins[1].frames}  # shared frames


def test_late_data_is_dropped_and_counted(caplog):
    w = UtteranceWindower(cfg(late_s=0.2), SR)
    feed_frames(w, 0.0, 2.0)
    w.add_transcript("x", 0.5, 1.5, True, stamp=1.5)
    assert len(w.poll(1.7)) == 1
    with caplog.at_level(logging.WARNING, logger="synctva_ros.windowing"):
        w.add_frame(1.05, img())          # older than the emitted window's end
        w.add_audio(1.0, np.zeros(320, np.float32), SR)  # ends at 1.02 < 1.5
    assert w.stats["late_frames"] == 1 and w.stats["late_audio"] == 1
    assert "late_frames" in caplog.text
    w.add_frame(2.05, img())  # newer than the watermark: kept
    assert w.stats["late_frames"] == 1


def test_duplicates_and_out_of_order():
    w = UtteranceWindower(cfg(), SR)
    w.add_frame(1.0, img())
    w.add_frame(1.0, img())
    w.add_frame(0.9, img())
    w.add_audio(1.0, np.zeros(160, np.float32), SR)
    w.add_audio(1.0, np.zeros(160, np.float32), SR)
    w.add_audio(0.99, np.ones(160, np.float32), SR)
    s = w.stats
    assert (s["frames"], s["audio_chunks"], s["duplicates"], s["out_of_order"]) == (2, 2, 2, 2)
    w.add_transcript("x", 0.9, 1.01, True, stamp=1.1)
    (win,) = w.flush()
    assert [f.stamp for f in win.frames] == [0.9, 1.0]
    assert win.audio_start == pytest.approx(0.99) and win.audio[:160].min() == 1.0


def test_time_reset_emits_pending_then_clears(caplog):
    w = UtteranceWindower(cfg(time_reset_s=2.0, late_s=0.3), SR)
    feed_frames(w, 100.0, 103.0)
    w.add_transcript("before", 101.0, 102.0, True, stamp=102.9, utterance_id="old")
    with caplog.at_level(logging.WARNING, logger="synctva_ros.windowing"):
        w.add_frame(0.5, img())  # bag restarted
    assert "resetting" in caplog.text
    assert w.stats["time_resets"] == 1 and w.buffered_frames == 1
    (old,) = w.poll(0.5)
    assert old.utterance_id == "old" and len(old.frames) == 11
    # new run windows normally, nothing from the old run leaks in
    feed_frames(w, 0.6, 2.0)
    w.add_transcript("after", 0.5, 1.5, True, stamp=1.6, utterance_id="new")
    (new,) = w.poll(2.0)
    assert new.utterance_id == "new" and all(0.5 <= f.stamp <= 1.5 for f in new.frames)
    assert len(new.frames) == 11
    # small backwards steps are only out of order
    w.add_frame(1.95, img())
    assert w.stats["time_resets"] == 1


def test_bad_input_is_counted_never_raised(caplog):
    w = UtteranceWindower(cfg(), SR)
    with caplog.at_level(logging.WARNING, logger="synctva_ros.windowing"):
        w.add_frame(1.0, np.zeros((4, 4), np.uint8))
        w.add_frame(1.0, np.zeros((4, 4, 3), np.float32))
        w.add_frame(float("nan"), img())
        w.add_frame(1.0, "not an image")  # type: ignore[arg-type]
        w.add_audio(1.0, np.array([0.1, float("nan")], np.float32), SR)
        w.add_audio(1.0, np.zeros((2, 3), np.float32), SR)
        w.add_audio(1.0, np.zeros(10, np.float32), 0)
        w.add_audio(float("inf"), np.zeros(10, np.float32), SR)
        w.add_transcript(None, 1.0, 2.0, True)  # type: ignore[arg-type]
        w.add_transcript("no time", float("nan"), float("nan"), True)  # nothing seen yet: no time
    s = w.stats
    assert (s["rejected_frames"], s["rejected_audio"], s["rejected_transcripts"]) == (4, 4, 2)
    assert "NaN" in caplog.text
    assert w.flush() == []


def test_other_sample_rate_is_resampled():
    w = UtteranceWindower(cfg(), SR)
    t = np.arange(4800) / 48000
    w.add_audio(1.0, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    w.add_transcript("x", 1.0, 1.1, True, stamp=1.2)
    (win,) = w.flush()
    assert w.stats["resampled_audio"] == 1
    assert win.audio.size == 1600
    spectrum = np.abs(np.fft.rfft(win.audio))
    assert np.argmax(spectrum) * SR / win.audio.size == pytest.approx(440, abs=15)


def test_gap_counted_and_zero_filled():
    w = UtteranceWindower(cfg(), SR)
    feed_audio(w, 0.0, 0.5)
    feed_audio(w, 0.7, 1.0)
    w.add_transcript("x", 0.0, 0.99, True, stamp=1.0)
    (win,) = w.flush()
    assert w.stats["gaps"] == 1
    gap = win.audio[int(0.5 * SR):int(0.7 * SR)]
    assert gap.size == int(0.2 * SR) and not gap.any()
    assert win.audio[: int(0.5 * SR)].min() > 0


def test_max_pending_drops_earliest():
    w = UtteranceWindower(cfg(max_pending=2), SR)
    for i in range(3):
        w.add_transcript(f"t{i}", i, i + 0.5, True, stamp=i + 0.5, utterance_id=f"u{i}")
    assert w.stats["dropped_windows"] == 1
    assert [x.utterance_id for x in w.flush()] == ["u1", "u2"]


def test_buffers_bounded_by_config():
    w = UtteranceWindower(cfg(buffer_s=2.0, max_frames=15), SR)
    feed_frames(w, 0.0, 10.0)
    feed_audio(w, 0.0, 10.0)
    assert w.buffered_frames == 15
    assert w.buffered_audio_s <= 2.0 + 0.02
    w.add_transcript("old", 1.0, 2.0, True, stamp=10.0)
    (win,) = w.flush()
    assert win.frames == [] and win.audio.size == 0 and win.present["text"]


def test_reset_clears_state():
    w = UtteranceWindower(cfg(), SR)
    feed_frames(w, 0.0, 1.0)
    w.add_transcript("x", 0.0, 1.0, True, stamp=1.0)
    w.reset()
    assert w.flush() == [] and w.buffered_frames == 0 and w.stats["frames"] == 11
    w.reset(clear_stats=True)
    assert w.stats["frames"] == 0


# ---------------------------------------------------------------- properties
@st.composite
def scenarios(draw):
    n_frames = draw(st.integers(0, 40))
    frames = sorted({round(draw(st.floats(0, 10)), 3) for _ in range(n_frames)})
    n_tr = draw(st.integers(1, 5))
    trs = []
    for i in range(n_tr):
        s = round(draw(st.floats(0, 9)), 3)
        e = round(s + draw(st.floats(0.1, 3)), 3)
        trs.append((f"u{i}", s, e))
    seed = draw(st.integers(0, 2**31 - 1))
    return frames, trs, seed


def _by_id(wins):
    return {x.utterance_id: (x.start, x.end, [f.stamp for f in x.frames], x.audio.size) for x in wins}


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_frames_in_window_are_exactly_those_in_bounds(sc):
    frames, trs, _ = sc
    # frames alone set the stream time: a transcript may end more than the default future tolerance after the
    # last frame (e.g. one frame at 0 s, a transcript ending at 11 s), which rule 1 rightly drops; not tested here
    w = UtteranceWindower(cfg(future_tolerance_s=1e6), SR)
    for t in frames:
        w.add_frame(t, img())
    for uid, s, e in trs:
        w.add_transcript(uid, s, e, True, stamp=e, utterance_id=uid)
    wins = w.poll(1e9)
    assert len(wins) == len(trs)
    assert [x.end for x in wins] == sorted(x.end for x in wins)
    for x in wins:
        got = [f.stamp for f in x.frames]
        assert all(x.start <= t <= x.end for t in got)
        assert got == [t for t in frames if x.start <= t <= x.end]  # none lost


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.floats(0.05, 1.0))
def test_poll_deterministic_under_interleaving(sc, late_s):
    """Items delivered in any order, each within late_s of its stamp, give the same windows."""
    frames, trs, seed = sc
    rng = random.Random(seed)
    events = [(t, "f", t) for t in frames]
    for k in range(0, 100):  # audio chunks of 0.1 s over [0, 10)
        events.append((k * 0.1, "a", k))
    events += [(e, "t", (uid, s, e)) for uid, s, e in trs]

    def run(jitter: bool):
        w = UtteranceWindower(cfg(late_s=late_s), SR)
        order = [((t + rng.uniform(0, late_s * 0.999)) if jitter else t, i) for i, (t, _, _) in enumerate(events)]
        out = []
        for arrival, i in sorted(order):
            t, kind, item = events[i]
            if kind == "f":
                w.add_frame(item, img())
            elif kind == "a":
                w.add_audio(item * 0.1, np.full(1600, item / 100, np.float32), SR)
            else:
                uid, s, e = item
                w.add_transcript(uid, s, e, True, stamp=e, utterance_id=uid)
            out += w.poll(arrival)
        out += w.flush()
        assert w.stats["late_frames"] == 0 and w.stats["late_audio"] == 0
        return out

    a, b = run(False), run(True)
    assert _by_id(a) == _by_id(b)
    for x, y in zip(sorted(a, key=lambda v: v.utterance_id), sorted(b, key=lambda v: v.utterance_id)):
        np.testing.assert_array_equal(x.audio, y.audio)
        assert math.isclose(x.audio_start, y.audio_start)


def test_frames_thinned_to_frame_keep_hz_and_counted():
    w = UtteranceWindower(cfg(late_s=0.0, frame_keep_hz=10.0), SR)
    stamps = feed_frames(w, 0.0, 2.0, fps=30.0)
    w.add_transcript("hi", 0.0, 2.0, is_final=True, stamp=2.0)
    (win,) = w.poll(2.0)
    kept = [f.stamp for f in win.frames]
    assert 19 <= len(kept) <= 21  # about 10 Hz out of 30 Hz
    assert all(b - a >= 0.95 / 10.0 - 1e-9 for a, b in zip(kept, kept[1:]))
    assert w.stats["thinned_frames"] == len(stamps) - len(kept)
    assert not w.wants_frame(kept[-1] + 0.01) and w.wants_frame(kept[-1] + 0.1)


def test_thin_frame_counts_without_an_image():
    """thin_frame is what the node and the bag reader call before decoding: same rule, same counter."""
    w = UtteranceWindower(cfg(frame_keep_hz=10.0), SR)
    assert not w.thin_frame(1.0)  # nothing kept yet: decode it
    w.add_frame(1.0, img())
    assert w.thin_frame(1.033) and w.thin_frame(1.066)  # within 0.95 / 10 s of the kept frame
    assert not w.thin_frame(1.1) and not w.thin_frame(float("nan"))  # due; a bad stamp goes to add_frame
    assert w.stats["thinned_frames"] == 2 and w.count("thinned_frames") == 2 and w.count("frames") == 1


class _Sink:
    def __init__(self):
        self.audio, self.frames, self.resets = [], [], 0

    def on_audio(self, stamp, samples, sample_rate):
        self.audio.append((stamp, samples.size, sample_rate))

    def on_frame(self, stamp, image):
        self.frames.append(stamp)

    def reset(self):
        self.resets += 1


def test_sink_gets_only_kept_data_at_the_windower_rate_and_is_reset():
    sink = _Sink()
    w = UtteranceWindower(cfg(frame_keep_hz=10.0, time_reset_s=0.5), SR, sink=sink)
    assert sink.resets == 1  # constructed = reset
    w.add_frame(1.0, img())
    w.add_frame(1.0, img())  # duplicate
    w.add_frame(1.03, img())  # thinned
    w.add_frame(1.1, np.zeros((4, 6), np.uint8))  # rejected (not RGB)
    w.add_frame(1.1, img())
    w.add_audio(1.0, np.zeros(480, np.float32), 48000)  # resampled to 16 kHz
    w.add_audio(1.0, np.zeros(480, np.float32), 48000)  # duplicate
    w.add_audio(1.01, np.full(160, np.nan, np.float32), SR)  # rejected
    assert sink.frames == [1.0, 1.1]
    assert sink.audio == [(1.0, 160, SR)]
    w.add_audio(0.0, np.zeros(160, np.float32), SR)  # time went back by more than time_reset_s
    assert w.stats["time_resets"] == 1 and sink.resets == 2 and sink.audio[-1] == (0.0, 160, SR)


class _TextSink(_Sink):
    def __init__(self):
        super().__init__()
        self.transcripts = []

    def on_transcript(self, window):
        self.transcripts.append(window)


def test_sink_gets_each_queued_final_transcript_before_its_window_closes():
    sink = _TextSink()
    w = UtteranceWindower(cfg(late_s=0.3), SR, sink=sink)
    feed_audio(w, 0.0, 2.0)
    w.add_transcript("so far", 0.2, 1.0, is_final=False, stamp=1.0)  # partial: no window, nothing handed over
    w.add_transcript("   ", 0.2, 1.0, is_final=True, stamp=1.0)  # empty: no window
    w.add_transcript("Hi\x00 there", 0.2, 1.8, is_final=True, stamp=1.8, utterance_id="u1", dialogue_id="d",
                     speaker_id="Ross")
    w.add_transcript("Hi there", 0.2, 1.8, is_final=True, stamp=1.8, utterance_id="u1")  # duplicate id: dropped
    (got,) = sink.transcripts
    assert (got.transcript, got.utterance_id, got.dialogue_id, got.speaker_id) == ("Hi there", "u1", "d", "Ross")
    assert got.session == w.session and got.audio.size == 0 and not got.frames  # ids only, no sensor data
    assert w.poll(1.9) == []  # handed over before the close (end + late_s)
    feed_audio(w, 2.0, 2.4)
    (win,) = w.poll(2.4)
    assert (win.transcript, win.utterance_id, win.session) == (got.transcript, got.utterance_id, got.session)


@pytest.mark.parametrize("grid", [0.0, 0.01, 0.02])
def test_window_audio_starts_on_the_sensor_time_grid(grid):
    w = UtteranceWindower(cfg(late_s=0.0, audio_grid_s=grid), SR)
    t0 = 1_700_000_000.0037  # epoch-sized, off the 10 ms grid
    feed_audio(w, t0, t0 + 3.0, chunk_s=0.032)
    start = t0 + 1.2345
    w.add_transcript("hi", start, t0 + 2.5, is_final=True, stamp=t0 + 2.5)
    (win,) = w.poll(t0 + 3.0)
    if grid == 0.0:
        assert 0.0 <= win.audio_start - start < 1.0 / SR  # first sample at or after the start
    else:
        g = math.floor(start / grid) * grid
        assert 0.0 <= win.audio_start - g < 1.0 / SR + 1e-6 and win.audio_start <= start
    assert win.audio.size == pytest.approx((win.end - win.audio_start) * SR, abs=1.5)
