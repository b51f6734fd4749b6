"""ContextAudio (``audio_mode="context"``): one live openSMILE run over the stream, pooled per window."""

from __future__ import annotations

import numpy as np
from stream_helpers import SR, relative_difference, speechlike, stream, window, windower_windows

from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.streaming import StreamingFeatureCache
from synctva_ros.streaming.audio_context import ContextAudio


def test_context_mode_pools_live_frames_close_to_batch(audio_ext: OpenSmileAudio) -> None:
    """Context mode: the window's frames come from one live run over the stream; they differ from the
    batch run only where the batch run lacks the audio around the window (its edges)."""
    x = speechlike(12.0, seed=3)
    cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="context", drain_timeout_s=30.0)
    assert isinstance(cache.audio, ContextAudio)
    try:
        _, windows = windower_windows(cache, x, 1_700_000_000.1234567,
                                      [(0.537, 3.2113), (3.9, 6.05), (5.001, 8.49), (8.6, 11.5)])
        assert len(windows) == 4
        for win in windows:
            got = cache.features_for(win)
            ref = audio_ext(win)
            assert got.meta["streaming"]["audio"] == "context"
            assert got.audio.x.shape == ref.x.shape  # same frame count and node count as the batch run
            rel = relative_difference(got.audio.x, ref.x)
            assert np.median(rel) < 1e-4 and np.percentile(rel, 95) < 1e-2  # edge nodes only
            np.testing.assert_allclose(got.audio.t, ref.t, atol=0.01)
        assert cache.stats["audio_context"] == 4
        assert cache.describe()["audio_frames"] > 0  # the live frames held for later windows
    finally:
        cache.close()
    assert cache.describe()["audio_frames"] == 0


def test_context_mode_hands_over_to_a_fresh_run_without_changing_frames(audio_ext: OpenSmileAudio) -> None:
    """openSMILE's memory grows with a run, so runs are rotated (every rotate_s): the new run starts
    1 s early and serves frames only once it has that context, so the windows do not change."""
    x = speechlike(12.0, seed=7)
    bounds = [(0.6, 3.3), (3.9, 6.05), (8.6, 11.5)]
    out = {}
    for rotate_s in (60.0, 2.0):
        cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="context", rotate_s=rotate_s,
                                      drain_timeout_s=30.0)
        try:
            _, windows = windower_windows(cache, x, 42.0, bounds)
            out[rotate_s] = [cache.features_for(w) for w in windows]
            rotations = cache.stats["audio_rotations"]
        finally:
            cache.close()
        assert (rotations > 3) == (rotate_s == 2.0)
    for a, b in zip(out[60.0], out[2.0]):
        assert a.meta["streaming"]["audio"] == b.meta["streaming"]["audio"] == "context"
        np.testing.assert_array_equal(a.audio.x, b.audio.x)


def test_context_mode_falls_back_where_the_stream_does_not_cover_the_window(audio_ext: OpenSmileAudio) -> None:
    x = speechlike(3.0, seed=8)
    cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="context", drain_timeout_s=30.0)
    try:
        win = window(x, 7.0, 0, x.size)
        assert cache.features_for(win).meta["streaming"]["audio"] == "batch:no_stream"
        stream(cache, x[16000:], 8.0)  # the stream starts 1 s into the window
        got = cache.features_for(win)
        assert got.meta["streaming"]["audio"] == "batch:not_covered"
        np.testing.assert_array_equal(got.audio.x, audio_ext(win).x)
        short = window(x, 7.0, 16000, 16400)  # 25 ms: too few frames to pool, the batch extractor pads it
        assert cache.features_for(short).meta["streaming"]["audio"] == "batch:short"
    finally:
        cache.close()


def test_context_mode_when_the_audio_stops_at_the_window_end(audio_ext: OpenSmileAudio) -> None:
    """A microphone that publishes only during speech: no audio after the window, so the live run is
    ended at close to get its last frames; audio continuing the segment afterwards resumes it."""
    x = speechlike(6.0, seed=9)
    cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="context", drain_timeout_s=30.0)
    try:
        stream(cache, x[:3 * SR], 20.0)
        win = window(x, 20.0, SR // 2, 3 * SR)  # ends where the stream (so far) ends
        got = cache.features_for(win)
        assert got.meta["streaming"]["audio"] == "context" and cache.stats["audio_ended_runs"] == 1
        ref = audio_ext(win)
        assert got.audio.x.shape == ref.x.shape and np.median(relative_difference(got.audio.x, ref.x)) < 1e-4
        stream(cache, x[3 * SR:], 23.0)  # the same segment goes on
        later = window(x, 20.0, 3 * SR + 8000, 6 * SR - 8000)
        assert cache.features_for(later).meta["streaming"]["audio"] == "context"
        assert cache.stats["audio_resumed"] == 1 and cache.stats["audio_reset"] == 0
    finally:
        cache.close()


def test_wait_ready_returns_once_the_windows_live_frames_are_there(audio_ext: OpenSmileAudio) -> None:
    """wait_ready (what ``synctva bench`` calls before timing a window) waits for the live frames, so the
    window is then served from the stream without waiting; a window not covered does not wait."""
    x = speechlike(4.0, seed=11)
    cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="context", drain_timeout_s=0.0)
    try:
        stream(cache, x, 60.0)
        win = window(x, 60.0, SR // 2, 3 * SR)  # 1 s of audio after it: the run is not ended at close
        assert cache.wait_ready(win, timeout_s=30.0)
        assert cache.features_for(win).meta["streaming"]["audio"] == "context"
        assert cache.stats["drain_timeout"] == 0 and cache.stats["audio_ended_runs"] == 0
        assert cache.wait_ready(window(x, 59.0, 0, SR), timeout_s=0.0)  # before the stream: nothing to wait for
    finally:
        cache.close()
