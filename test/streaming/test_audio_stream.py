"""AudioStream: the segment both audio modes share (gaps, sample rates, generations, trimming, checks)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from stream_helpers import SR, speechlike, window

from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.streaming.audio_context import ContextAudio
from synctva_ros.streaming.audio_exact import ExactAudio
from synctva_ros.streaming.audio_stream import drop_below


def _add(s, x: np.ndarray, t0: float, gen: int = 0, chunk: int = 480, sr: int = SR) -> None:
    for i in range(0, x.size, chunk):
        s.add(t0 + i / sr, x[i:i + chunk], sr, gen=gen)


def test_drop_below_deletes_from_the_front_only() -> None:
    frames = {k: k for k in range(10)}
    drop_below(frames, 6)
    assert list(frames) == [6, 7, 8, 9]
    late = {5: "a", 6: "b", 2: "late"}  # a key inserted out of order goes once the keys before it do
    drop_below(late, 4)
    assert list(late) == [5, 6, 2]
    drop_below(late, 7)
    assert late == {}


@pytest.mark.parametrize("cls", [ExactAudio, ContextAudio])
def test_gaps_rates_and_stale_generations_start_or_skip_segments(audio_ext: OpenSmileAudio, cls) -> None:
    """Both modes: a chunk of an old generation is ignored; another sample rate and a jump in time start
    a new segment (counted); a window is then served only from the segment that covers it."""
    x = speechlike(3.0, seed=12)
    stats: Counter[str] = Counter()
    kw = {"rotate_s": 60.0} if cls is ContextAudio else {}
    s = cls(audio_ext, stats, buffer_s=30.0, block_s=0.5, left_context_s=1.0, gap_tolerance_s=0.02, **kw)
    try:
        s.reset(gen=1)
        _add(s, x, 10.0, gen=0)  # queued before the reset: ignored
        assert s.frame_count() == 0
        assert s.features(window(x, 10.0, 0, x.size), 0.5)[1] == "batch:no_stream"
        _add(s, x, 10.0, gen=1)
        assert stats["audio_reset"] == 0
        s.add(13.0, np.zeros(160, np.float32), 8000, gen=1)  # another rate: the segment ends
        assert stats["audio_reset"] == 1 and s.frame_count() == 0
        _add(s, x[:SR], 20.0, gen=1)
        _add(s, x[SR:], 21.5, gen=1)  # 0.5 s gap
        assert stats["audio_reset"] == 2
        assert s.features(window(x, 20.0, 0, 2 * SR), 0.5)[1] == "batch:not_covered"
    finally:
        s.reset(gen=2)
        s.close()


def test_audio_and_frames_kept_are_bounded(audio_ext: OpenSmileAudio) -> None:
    """A long stream keeps about buffer_s + left context of frames, not all of them."""
    s = ExactAudio(audio_ext, Counter(), buffer_s=1.0, block_s=0.5, left_context_s=1.0, gap_tolerance_s=0.02)
    _add(s, speechlike(6.0, seed=13), 0.0)
    assert 100 <= s.frame_count() <= 200  # (buffer_s + left_context_s) / 10 ms at most; 580 computed


def test_windows_the_stream_cannot_use_go_to_the_batch_extractor(audio_ext: OpenSmileAudio) -> None:
    x = speechlike(3.0, seed=14)
    s = ExactAudio(audio_ext, Counter(), buffer_s=30.0, block_s=0.5, left_context_s=1.0, gap_tolerance_s=0.02)
    _add(s, x, 0.0)
    empty = window(x, 0.0, 0, 0)
    assert s.features(empty, 0.5) == (audio_ext(empty), "batch:bad_audio")  # no audio: None
    bad = window(x, 0.0, 0, SR)
    bad.audio[100] = np.nan
    assert s.features(bad, 0.5)[1] == "batch:bad_audio"
    other_rate = window(x, 0.0, 0, SR)
    other_rate.sample_rate = 8000
    got, how = s.features(other_rate, 0.5)
    assert how == "batch:sample_rate"
    np.testing.assert_array_equal(got.x, audio_ext(other_rate).x)
