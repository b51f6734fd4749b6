"""windowing.closing: transcript window bounds (rule 2), voice-activity closing (rule 9), the pending queue."""

from __future__ import annotations

import math
import random

import pytest

from synctva_ros.config import WindowingConfig
from synctva_ros.windowing.closing import (PendingQueue, PendingWindow, WindowCloser, clip_to_max, known_end,
                                           stt_silent, transcript_bounds)
from synctva_ros.windowing.counters import WindowerCounters

CFG = WindowingConfig(vad_enabled=False, max_window_s=10.0, min_window_s=0.5, default_window_s=3.0)


def _pending(end: float, start: float = 0.0, uid: str = "u", closed_by: str = "transcript") -> PendingWindow:
    return PendingWindow(start, end, "text", closed_by, uid, "", "", math.nan)


@pytest.mark.parametrize("end, expected", [(2.5, 2.5), (0.0, None), (-1.0, None), (math.nan, None),
                                           (math.inf, None), (None, None), ("x", None), ("4", 4.0)])
def test_known_end(end, expected):
    assert known_end(end) == expected


def test_known_bounds_are_kept():
    b = transcript_bounds(1.0, 4.0, 4.2, CFG)
    assert (b.start, b.end) == (1.0, 4.0)
    assert not (b.unknown_end or b.unknown_start or b.clipped or b.widened)


def test_unknown_end_takes_the_reference_time_and_makes_the_start_unknown():
    b = transcript_bounds(1.0, None, 6.0, CFG)
    assert (b.start, b.end, b.unknown_end, b.unknown_start) == (3.0, 6.0, True, True)


@pytest.mark.parametrize("start", [math.nan, None, "x", 5.0, 0.0])
def test_unknown_start_uses_the_voice_onset_else_the_default_length(start):
    end = 12.0  # > max_window_s, so a start of 0 is "clearly unset"
    onsets = []

    def onset(before, within):
        onsets.append((before, within))
        return 9.5

    b = transcript_bounds(start if start != 5.0 else 13.0, end, end, CFG, onset)
    assert b.unknown_start and (b.start, b.end) == (9.5, end) and onsets == [(end, CFG.max_window_s)]
    b = transcript_bounds(start if start != 5.0 else 13.0, end, end, CFG, lambda before, within: None)
    assert b.start == end - CFG.default_window_s


def test_the_onset_is_asked_only_when_the_start_is_unknown():
    def onset(before, within):
        raise AssertionError("not needed")

    assert transcript_bounds(2.0, 4.0, 4.0, CFG, onset).start == 2.0


def test_clip_and_widen():
    b = transcript_bounds(1.0, 20.0, 20.0, CFG)
    assert (b.start, b.clipped, b.widened) == (10.0, True, False)
    b = transcript_bounds(3.9, 4.0, 4.0, CFG)
    assert (b.start, b.clipped, b.widened) == (3.5, False, True)
    assert clip_to_max(0.0, 5.0, 10.0) == (0.0, False) and clip_to_max(0.0, 15.0, 10.0) == (5.0, True)


def test_stt_silent():
    assert stt_silent(5.0, None, 10.0)
    assert not stt_silent(5.0, 0.0, 10.0) and stt_silent(10.0, 0.0, 10.0) and stt_silent(11.0, 0.0, 10.0)
    assert stt_silent(1.0, 1.0, 0.0)


def test_queue_orders_by_key_whatever_the_arrival_order():
    items = [_pending(e, s, u) for e, s, u in [(3.0, 1.0, "b"), (2.0, 1.0, "a"), (3.0, 0.5, "c"), (3.0, 1.0, "a")]]
    expected = [("a", 2.0), ("c", 3.0), ("a", 3.0), ("b", 3.0)]
    for seed in range(5):
        q = PendingQueue()
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        for p in shuffled:
            assert q.push(PendingWindow(**{**p.__dict__}), 100) is None
        assert len(q) == 4
        assert [(p.utterance_id, p.end) for p in q.drain()] == expected and len(q) == 0


def test_queue_numbers_arrivals_pops_due_and_drops_the_first_beyond_max():
    q = PendingQueue()
    for end in (5.0, 1.0, 3.0):
        q.push(_pending(end), 10)
    assert [p.seq for p in sorted(q.drain(), key=lambda p: p.seq)] == [0, 1, 2]
    q.push(_pending(5.0), 10)
    assert q.pop_due(4.0, 0.3) == [] and len(q) == 1
    q.push(_pending(1.0), 10)
    q.push(_pending(3.0), 10)
    assert [p.end for p in q.pop_due(3.3, 0.3)] == [1.0, 3.0] and len(q) == 1
    dropped = q.push(_pending(0.5, uid="early"), 1)
    assert dropped is not None and dropped.utterance_id == "early" and len(q) == 1
    q.clear()
    q.push(_pending(1.0), 10)
    assert q.drain()[0].seq == 0


def test_closer_counts_and_queues_transcripts():
    counters = WindowerCounters()
    closer = WindowCloser(CFG, counters)
    closer.on_transcript("partial", 1.0, 2.0, 2.0, False, "u0", "", "", 0.5)
    closer.on_transcript("  ", 1.0, 2.0, 2.0, True, "u1", "", "", 0.5)
    closer.on_transcript("hello", 1.0, 2.0, 2.0, True, 7, "d", "en", "x")
    assert (counters["transcripts"], counters["partial_transcripts"], counters["empty_transcripts"]) == (3, 1, 1)
    (p,) = closer.queue.drain()
    assert (p.start, p.end, p.transcript, p.closed_by, p.utterance_id, p.dialogue_id, p.language) == \
        (1.0, 2.0, "hello", "transcript", "7", "d", "en")
    assert math.isnan(p.confidence)


def test_closer_turns_speech_into_vad_windows_only_when_stt_is_silent():
    counters = WindowerCounters()
    closer = WindowCloser(CFG, counters)
    assert closer.vad is None
    closer.on_speech(1.0, 2.0, last_transcript=None)
    closer.on_speech(3.0, 4.0, last_transcript=0.0)  # a transcript 4 s ago < stt_timeout_s: STT is alive
    closer.on_speech(0.0, 30.0, last_transcript=0.0)  # longer than max_window_s: clipped
    windows = closer.flush(None)
    assert [(p.utterance_id, p.start, p.end, p.transcript) for p in windows] == \
        [("vad1", 1.0, 2.0, None), ("vad2", 20.0, 30.0, None)]
    assert counters["clipped_windows"] == 1
    closer.clear()
    closer.on_speech(1.0, 2.0, None)
    assert closer.flush(None)[0].utterance_id == "vad1"


def test_closer_feeds_a_real_vad_when_enabled():
    pytest.importorskip("webrtcvad")
    closer = WindowCloser(WindowingConfig(vad_enabled=True), WindowerCounters(), sample_rate=22050)
    assert closer.vad is not None and closer.vad.sample_rate == 16000  # 22.05 kHz is not a WebRTC rate
    with pytest.raises(ValueError, match="frame_ms"):
        WindowCloser(WindowingConfig(vad_enabled=True, vad_frame_ms=15), WindowerCounters())
