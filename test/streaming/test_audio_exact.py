"""ExactAudio (``audio_mode="exact"``): block-wise openSMILE LLDs equal to the batch extractor's."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from stream_helpers import SR, speechlike, stream, window, windower_windows

from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.streaming import StreamingFeatureCache
from synctva_ros.streaming.audio_exact import ExactAudio


@pytest.mark.parametrize("a,b", [(8000, 56000), (4800, 40160), (16000, 60000)])
def test_streamed_audio_equals_batch_on_grid(audio_ext: OpenSmileAudio, a: int, b: int) -> None:
    x = speechlike(4.0)
    t0 = 100.0
    cache = StreamingFeatureCache({"audio": audio_ext}, exact=True, audio_mode="exact")
    assert isinstance(cache.audio, ExactAudio)
    stream(cache, x, t0)
    win = window(x, t0, a, b)
    got = cache.features_for(win)
    ref = audio_ext(win)
    assert got.meta["streaming"]["audio"] == "cache"
    assert got.audio.x.shape == ref.x.shape
    np.testing.assert_allclose(got.audio.x, ref.x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.audio.t, ref.t, atol=1e-6)


def test_off_grid_window_exact_falls_back_and_shifted_is_close(audio_ext: OpenSmileAudio) -> None:
    x = speechlike(4.0, seed=1)
    t0 = 5.0
    exact = StreamingFeatureCache({"audio": audio_ext}, exact=True, audio_mode="exact")
    approx = StreamingFeatureCache({"audio": audio_ext}, exact=False, audio_mode="exact")
    stream(exact, x, t0)
    stream(approx, x, t0)
    win = window(x, t0, 8050, 56050)  # 50 samples (3.1 ms) off the 10 ms grid
    ref = audio_ext(win)
    e = exact.features_for(win)
    assert e.meta["streaming"]["audio"] == "batch:off_grid"
    np.testing.assert_array_equal(e.audio.x, ref.x)
    s = approx.features_for(win)
    assert s.meta["streaming"]["audio"] == "cache:shifted"
    assert s.audio.x.shape == ref.x.shape
    np.testing.assert_allclose(s.audio.t, ref.t, atol=1e-6)
    # shifted frames are < 5 ms off: most pooled values stay close relative to each LLD's range
    scale = np.abs(ref.x).max(axis=0) + 1e-3
    rel = np.abs(s.audio.x - ref.x) / scale
    assert 0.0 < np.median(rel) < 0.05


def test_uncovered_window_and_gaps_fall_back(audio_ext: OpenSmileAudio) -> None:
    x = speechlike(3.0, seed=2)
    cache = StreamingFeatureCache({"audio": audio_ext}, exact=True, audio_mode="exact")
    win = window(x, 0.0, 0, 32000)
    got = cache.features_for(win)  # nothing streamed yet
    assert got.meta["streaming"]["audio"] == "batch:no_stream"
    np.testing.assert_array_equal(got.audio.x, audio_ext(win).x)
    stream(cache, x[:16000], 0.0)
    stream(cache, x[16000:], 0.5 + 1.0)  # jump: new segment
    assert cache.stats["audio_reset"] == 1
    got = cache.features_for(window(x, 0.0, 0, 32000))
    assert got.meta["streaming"]["audio"] in ("batch:no_stream", "batch:not_covered")


@pytest.mark.parametrize("t0", [1_700_000_000.123_456_7, 37.004_31])
def test_windower_windows_hit_the_cache_and_equal_batch(audio_ext: OpenSmileAudio, t0: float) -> None:
    """Arbitrary (epoch-sized, off-grid) stream origins and window bounds: the windower's audio grid and the
    cache's sensor-time grid line up, so every window is served from the cache with the batch values."""
    x = speechlike(9.0, seed=3)
    cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="exact")
    w, windows = windower_windows(cache, x, t0, [(0.537, 3.2113), (3.9, 6.05), (5.001, 8.49)])
    assert len(windows) == 3
    for win in windows:
        # the first window sample is the first at or after a multiple of 10 ms, at or before the start
        g = np.floor(win.start / 0.01 + 1e-9) * 0.01
        assert -1e-6 <= win.audio_start - g < 1.0 / SR and win.audio_start <= win.start
        got = cache.features_for(win)
        ref = audio_ext(win)
        assert got.meta["streaming"]["audio"] == "cache"
        np.testing.assert_array_equal(got.audio.x, ref.x)
        np.testing.assert_allclose(got.audio.t, ref.t, atol=1e-6)
    assert cache.stats["audio_cache"] == 3 and cache.stats["audio_reset"] == 0


def test_a_window_too_short_for_a_cached_middle_falls_back(audio_ext: OpenSmileAudio) -> None:
    """The head (left context) and the tail (right context) are recomputed at close; a window with nothing
    between them is served by the batch extractor, with its values."""
    x = speechlike(4.0, seed=10)
    stats: Counter[str] = Counter()
    s = ExactAudio(audio_ext, stats, buffer_s=30.0, block_s=0.5, left_context_s=1.0, gap_tolerance_s=0.02)
    for i in range(0, x.size, 480):
        s.add(50.0 + i / SR, x[i:i + 480], SR, gen=0)
    short = window(x, 50.0, 8000, 8000 + int(1.1 * SR))  # 1.1 s: 1 s head + 0.15 s right context > length
    got, how = s.features(short, timeout_s=0.5)
    assert how == "batch:short"
    np.testing.assert_array_equal(got.x, audio_ext(short).x)
    got, how = s.features(window(x, 50.0, 8000, 8000 + 2 * SR), timeout_s=0.5)
    assert how == "cache" and got.x.shape == audio_ext(window(x, 50.0, 8000, 8000 + 2 * SR)).x.shape
