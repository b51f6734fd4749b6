"""StreamingFeatureCache: incremental openSMILE LLDs and cached frame embeddings vs the batch extractors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.streaming import StreamingFeatureCache
from synctva_ros.core.window import TimedFrame, UtteranceWindow

SR = 16000


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced, amplitude- and pitch-modulated signal with noise (exercises pitch, jitter, formants)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * t) ** 2
    x = env * (0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase))
    x[(t % 1.1) > 0.9] *= 0.02  # pauses
    return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def audio_ext() -> OpenSmileAudio:
    return OpenSmileAudio("eGeMAPSv02", sample_rate=SR, max_nodes=32)


def _stream(cache: StreamingFeatureCache, x: np.ndarray, t0: float, chunk: int = 480) -> None:
    for i in range(0, x.size, chunk):
        cache.on_audio(t0 + i / SR, x[i:i + chunk], SR)


def _window(x: np.ndarray, t0: float, a: int, b: int, frames: list[TimedFrame] | None = None) -> UtteranceWindow:
    return UtteranceWindow(start=t0 + a / SR, end=t0 + b / SR, transcript="hi", audio=x[a:b].copy(),
                           sample_rate=SR, audio_start=t0 + a / SR, frames=frames or [])


@pytest.mark.parametrize("a,b", [(8000, 56000), (4800, 40160), (16000, 60000)])
def test_streamed_audio_equals_batch_on_grid(audio_ext: OpenSmileAudio, a: int, b: int) -> None:
    x = _speechlike(4.0)
    t0 = 100.0
    cache = StreamingFeatureCache({"audio": audio_ext}, exact=True)
    _stream(cache, x, t0)
    win = _window(x, t0, a, b)
    got = cache.features_for(win)
    ref = audio_ext(win)
    assert got.meta["streaming"]["audio"] == "cache"
    assert got.audio.x.shape == ref.x.shape
    np.testing.assert_allclose(got.audio.x, ref.x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.audio.t, ref.t, atol=1e-6)


def test_off_grid_window_exact_falls_back_and_shifted_is_close(audio_ext: OpenSmileAudio) -> None:
    x = _speechlike(4.0, seed=1)
    t0 = 5.0
    exact = StreamingFeatureCache({"audio": audio_ext}, exact=True)
    approx = StreamingFeatureCache({"audio": audio_ext}, exact=False)
    _stream(exact, x, t0)
    _stream(approx, x, t0)
    win = _window(x, t0, 8050, 56050)  # 50 samples (3.1 ms) off the 10 ms grid
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
    x = _speechlike(3.0, seed=2)
    cache = StreamingFeatureCache({"audio": audio_ext}, exact=True)
    win = _window(x, 0.0, 0, 32000)
    got = cache.features_for(win)  # nothing streamed yet
    assert got.meta["streaming"]["audio"] == "batch:no_stream"
    np.testing.assert_array_equal(got.audio.x, audio_ext(win).x)
    _stream(cache, x[:16000], 0.0)
    _stream(cache, x[16000:], 0.5 + 1.0)  # jump: new segment
    assert cache.stats["audio_reset"] == 1
    got = cache.features_for(_window(x, 0.0, 0, 32000))
    assert got.meta["streaming"]["audio"] in ("batch:no_stream", "batch:not_covered")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        StreamingFeatureCache({}, block_s=0)
    with pytest.raises(ValueError):
        StreamingFeatureCache({}, oversample=0.5)


@pytest.fixture(scope="module")
def visual_ext(tmp_path_factory: pytest.TempPathFactory):
    from synctva_ros.features.torchvision_compat import ensure_torchvision

    ensure_torchvision()
    import torchvision

    from synctva_ros.features.visual import ResNetVisual

    torch.manual_seed(0)
    path = Path(tmp_path_factory.mktemp("rn")) / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return ResNetVisual("resnet18", path, fps=2.0, max_frames=4, face_crop=False, image_size=64)


def _frames(t0: float, seconds: float, fps: float = 10.0) -> list[TimedFrame]:
    rng = np.random.default_rng(3)
    return [TimedFrame(t0 + i / fps, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
            for i in range(int(seconds * fps))]


def test_visual_cache_exact_and_nearest(visual_ext) -> None:
    frames = _frames(10.0, 3.0)
    win = UtteranceWindow(start=10.0, end=12.9, frames=frames)
    ref = visual_ext(win)
    # exact: only the frames the batch rule picks can be hits; the others are encoded at close
    exact = StreamingFeatureCache({"visual": visual_ext}, exact_visual=True, oversample=2.0)
    for f in frames:
        exact.on_frame(f.stamp, f.image)
    got = exact.features_for(win)
    np.testing.assert_allclose(got.visual.x, ref.x, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got.visual.t, ref.t)
    # nearest: every picked frame has a cached neighbour within half the encoding period
    near = StreamingFeatureCache({"visual": visual_ext}, exact_visual=False, oversample=2.0)
    for f in frames:
        near.on_frame(f.stamp, f.image)
    n_cached = len(near._emb)
    assert n_cached == pytest.approx(3.0 * 2.0 * 2.0, abs=1)
    got = near.features_for(win)
    assert near.stats["visual_miss"] == 0
    assert got.visual.x.shape == ref.x.shape
    np.testing.assert_array_equal(got.visual.t, ref.t)


def test_no_frames_gives_none(visual_ext) -> None:
    cache = StreamingFeatureCache({"visual": visual_ext})
    assert cache.features_for(UtteranceWindow(start=0.0, end=1.0)).visual is None


# ---------------------------------------------------------------- through the windower (as the node)
def _windower_windows(cache, x: np.ndarray, t0: float, bounds: list[tuple[float, float]], chunk: int = 512):
    """Feed continuous audio through an UtteranceWindower whose sink is ``cache``; return its windows."""
    from synctva_ros.config import WindowingConfig
    from synctva_ros.windowing.windower import UtteranceWindower

    w = UtteranceWindower(WindowingConfig(vad_enabled=False), SR, sink=cache)
    out = []
    pending = sorted(bounds, key=lambda b: b[1])
    for i in range(0, x.size, chunk):
        stamp = t0 + i / SR
        w.add_audio(stamp, x[i:i + chunk], SR)
        while pending and pending[0][1] <= stamp:  # final transcript as soon as the utterance ends
            s, e = pending.pop(0)
            w.add_transcript("words", t0 + s, t0 + e, True, stamp=stamp)
        out.extend(w.poll(stamp + chunk / SR))
    out.extend(w.flush())
    return w, out


@pytest.mark.parametrize("t0", [1_700_000_000.123_456_7, 37.004_31])
def test_windower_windows_hit_the_cache_and_equal_batch(audio_ext: OpenSmileAudio, t0: float) -> None:
    """Arbitrary (epoch-sized, off-grid) stream origins and window bounds: the windower's audio grid and the
    cache's sensor-time grid line up, so every window is served from the cache with the batch values."""
    x = _speechlike(9.0, seed=3)
    cache = StreamingFeatureCache({"audio": audio_ext})
    w, windows = _windower_windows(cache, x, t0, [(0.537, 3.2113), (3.9, 6.05), (5.001, 8.49)])
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


def test_background_thread_gives_the_same_features(audio_ext: OpenSmileAudio) -> None:
    x = _speechlike(6.0, seed=4)
    t0 = 250.0
    sync = StreamingFeatureCache({"audio": audio_ext})
    bg = StreamingFeatureCache({"audio": audio_ext}, drain_timeout_s=30.0)
    bg.start()
    try:
        assert bg.running
        _, w_sync = _windower_windows(sync, x, t0, [(1.0, 4.5)])
        _, w_bg = _windower_windows(bg, x, t0, [(1.0, 4.5)])
        a, b = sync.features_for(w_sync[0]), bg.features_for(w_bg[0])  # waits for the queued audio
        assert a.meta["streaming"]["audio"] == b.meta["streaming"]["audio"] == "cache"
        np.testing.assert_array_equal(a.audio.x, b.audio.x)
        assert bg.describe()["queued_audio"] == 0
    finally:
        bg.stop()
    assert not bg.running


def test_reset_discards_queued_data(audio_ext: OpenSmileAudio) -> None:
    """A time reset while chunks wait in the queue: none of them reaches the new segment."""
    x = _speechlike(3.0, seed=5)
    cache = StreamingFeatureCache({"audio": audio_ext}, max_queue=4)
    cache.start()
    try:
        _stream(cache, x, 10.0)  # 100 chunks into a 4-deep queue: the oldest are dropped (counted)
        cache.reset()
        win = _window(x, 10.0, 0, x.size)
        got = cache.features_for(win)
        assert got.meta["streaming"]["audio"] == "batch:no_stream"
        np.testing.assert_array_equal(got.audio.x, audio_ext(win).x)
    finally:
        cache.stop()
    assert cache.stats["queue_dropped"] > 0


def test_windower_resets_the_sink_when_time_goes_back(audio_ext: OpenSmileAudio) -> None:
    x = _speechlike(3.0, seed=6)
    cache = StreamingFeatureCache({"audio": audio_ext})
    w, _ = _windower_windows(cache, x, 500.0, [])
    assert cache.describe()["audio_frames"] > 0
    w.add_audio(10.0, x[:512], SR)  # a bag restarted: the windower resets and so does its sink
    assert w.stats["time_resets"] == 1
    assert cache.describe()["audio_frames"] == 0


# ---------------------------------------------------------------- audio_mode="context" (live openSMILE)
def _relative_difference(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(got - ref) / (np.abs(ref).max(axis=0) + 1e-3)


def test_context_mode_pools_live_frames_close_to_batch(audio_ext: OpenSmileAudio) -> None:
    """Context mode: the window's frames come from one live run over the stream; they differ from the
    batch run only where the batch run lacks the audio around the window (its edges)."""
    x = _speechlike(12.0, seed=3)
    cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="context", drain_timeout_s=30.0)
    try:
        _, windows = _windower_windows(cache, x, 1_700_000_000.1234567,
                                       [(0.537, 3.2113), (3.9, 6.05), (5.001, 8.49), (8.6, 11.5)])
        assert len(windows) == 4
        for win in windows:
            got = cache.features_for(win)
            ref = audio_ext(win)
            assert got.meta["streaming"]["audio"] == "context"
            assert got.audio.x.shape == ref.x.shape  # same frame count and node count as the batch run
            rel = _relative_difference(got.audio.x, ref.x)
            assert np.median(rel) < 1e-4 and np.percentile(rel, 95) < 1e-2  # edge nodes only
            np.testing.assert_allclose(got.audio.t, ref.t, atol=0.01)
        assert cache.stats["audio_context"] == 4
    finally:
        cache.close()


def test_context_mode_hands_over_to_a_fresh_run_without_changing_frames(audio_ext: OpenSmileAudio) -> None:
    """openSMILE's memory grows with a run, so runs are rotated (every rotate_s): the new run starts
    1 s early and serves frames only once it has that context, so the windows do not change."""
    x = _speechlike(12.0, seed=7)
    bounds = [(0.6, 3.3), (3.9, 6.05), (8.6, 11.5)]
    out = {}
    for rotate_s in (60.0, 2.0):
        cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="context", rotate_s=rotate_s,
                                      drain_timeout_s=30.0)
        try:
            _, windows = _windower_windows(cache, x, 42.0, bounds)
            out[rotate_s] = [cache.features_for(w) for w in windows]
            rotations = cache.stats["audio_rotations"]
        finally:
            cache.close()
        assert (rotations > 3) == (rotate_s == 2.0)
    for a, b in zip(out[60.0], out[2.0]):
        assert a.meta["streaming"]["audio"] == b.meta["streaming"]["audio"] == "context"
        np.testing.assert_array_equal(a.audio.x, b.audio.x)


def test_context_mode_falls_back_where_the_stream_does_not_cover_the_window(audio_ext: OpenSmileAudio) -> None:
    x = _speechlike(3.0, seed=8)
    cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="context", drain_timeout_s=30.0)
    try:
        win = _window(x, 7.0, 0, x.size)
        assert cache.features_for(win).meta["streaming"]["audio"] == "batch:no_stream"
        _stream(cache, x[16000:], 8.0)  # the stream starts 1 s into the window
        got = cache.features_for(win)
        assert got.meta["streaming"]["audio"] == "batch:not_covered"
        np.testing.assert_array_equal(got.audio.x, audio_ext(win).x)
        short = _window(x, 7.0, 16000, 16400)  # 25 ms: too few frames to pool, the batch extractor pads it
        assert cache.features_for(short).meta["streaming"]["audio"] == "batch:short"
    finally:
        cache.close()


def test_context_mode_when_the_audio_stops_at_the_window_end(audio_ext: OpenSmileAudio) -> None:
    """A microphone that publishes only during speech: no audio after the window, so the live run is
    ended at close to get its last frames; audio continuing the segment afterwards resumes it."""
    x = _speechlike(6.0, seed=9)
    cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="context", drain_timeout_s=30.0)
    try:
        _stream(cache, x[:3 * SR], 20.0)
        win = _window(x, 20.0, SR // 2, 3 * SR)  # ends where the stream (so far) ends
        got = cache.features_for(win)
        assert got.meta["streaming"]["audio"] == "context" and cache.stats["audio_ended_runs"] == 1
        ref = audio_ext(win)
        assert got.audio.x.shape == ref.x.shape and np.median(_relative_difference(got.audio.x, ref.x)) < 1e-4
        _stream(cache, x[3 * SR:], 23.0)  # the same segment goes on
        later = _window(x, 20.0, 3 * SR + 8000, 6 * SR - 8000)
        assert cache.features_for(later).meta["streaming"]["audio"] == "context"
        assert cache.stats["audio_resumed"] == 1 and cache.stats["audio_reset"] == 0
    finally:
        cache.close()


def test_background_frames_queue_is_bounded_and_missing_frames_are_encoded_at_close(visual_ext) -> None:
    """An encoder slower than the camera: the frame queue drops its oldest (counted, bounded memory) and
    the window still gets every picked frame, the missing ones encoded at close with the exact frame."""
    frames = _frames(30.0, 3.0, fps=30.0)
    win = UtteranceWindow(start=30.0, end=32.9, frames=frames)
    cache = StreamingFeatureCache({"visual": visual_ext}, exact_visual=True, oversample=15.0, max_frame_queue=2)
    cache.start()
    try:
        for f in frames:  # 90 frames at once, all due (2 fps x 15 = 30 per second)
            cache.on_frame(f.stamp, f.image)
        assert cache.describe()["queued_frames"] <= 2
        got = cache.features_for(win)
    finally:
        cache.close()
    assert cache.stats["queue_dropped"] > 0
    ref = visual_ext(win)
    np.testing.assert_allclose(got.visual.x, ref.x, rtol=1e-4, atol=1e-4)
    assert cache.stats["visual_hit"] + cache.stats["visual_miss"] == ref.x.shape[0]
