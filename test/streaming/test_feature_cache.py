"""StreamingFeatureCache: the windower's sink, its background thread and bounded queues, reset and close."""

from __future__ import annotations

import numpy as np
import pytest
from stream_helpers import SR, camera_frames, speechlike, stream, window, windower_windows

from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.features.visual import ResNetVisual
from synctva_ros.streaming import StreamingFeatureCache


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        StreamingFeatureCache({}, block_s=0)
    with pytest.raises(ValueError):
        StreamingFeatureCache({}, oversample=0.5)


def test_background_thread_gives_the_same_features(audio_ext: OpenSmileAudio) -> None:
    x = speechlike(6.0, seed=4)
    t0 = 250.0
    sync = StreamingFeatureCache({"audio": audio_ext}, audio_mode="exact")
    bg = StreamingFeatureCache({"audio": audio_ext}, drain_timeout_s=30.0, audio_mode="exact")
    bg.start()
    try:
        assert bg.running
        _, w_sync = windower_windows(sync, x, t0, [(1.0, 4.5)])
        _, w_bg = windower_windows(bg, x, t0, [(1.0, 4.5)])
        a, b = sync.features_for(w_sync[0]), bg.features_for(w_bg[0])  # waits for the queued audio
        assert a.meta["streaming"]["audio"] == b.meta["streaming"]["audio"] == "cache"
        np.testing.assert_array_equal(a.audio.x, b.audio.x)
        assert bg.describe()["queued_audio"] == 0
    finally:
        bg.stop()
    assert not bg.running


def test_reset_discards_queued_data(audio_ext: OpenSmileAudio) -> None:
    """A time reset while chunks wait in the queue: none of them reaches the new segment."""
    x = speechlike(3.0, seed=5)
    cache = StreamingFeatureCache({"audio": audio_ext}, max_queue=4, audio_mode="exact")
    cache.start()
    try:
        stream(cache, x, 10.0)  # 100 chunks into a 4-deep queue: the oldest are dropped (counted)
        cache.reset()
        win = window(x, 10.0, 0, x.size)
        got = cache.features_for(win)
        assert got.meta["streaming"]["audio"] == "batch:no_stream"
        np.testing.assert_array_equal(got.audio.x, audio_ext(win).x)
    finally:
        cache.stop()
    assert cache.stats["queue_dropped"] > 0


def test_windower_resets_the_sink_when_time_goes_back(audio_ext: OpenSmileAudio) -> None:
    x = speechlike(3.0, seed=6)
    cache = StreamingFeatureCache({"audio": audio_ext}, audio_mode="exact")
    w, _ = windower_windows(cache, x, 500.0, [])
    assert cache.describe()["audio_frames"] > 0
    w.add_audio(10.0, x[:512], SR)  # a bag restarted: the windower resets and so does its sink
    assert w.stats["time_resets"] == 1
    assert cache.describe()["audio_frames"] == 0


def test_background_frames_queue_is_bounded_and_missing_frames_are_encoded_at_close(visual_ext: ResNetVisual) -> None:
    """An encoder slower than the camera: the frame queue drops its oldest (counted, bounded memory) and
    the window still gets every picked frame, the missing ones encoded at close with the exact frame."""
    frames = camera_frames(30.0, 3.0, fps=30.0)
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


def test_audio_and_frames_together_through_the_thread(audio_ext: OpenSmileAudio, visual_ext: ResNetVisual) -> None:
    """Both modalities through one worker: audio is served from the live run, frames from the cache, and
    close() leaves nothing running, queued or cached."""
    x = speechlike(4.0, seed=16)
    frames = camera_frames(70.0, 4.0)
    cache = StreamingFeatureCache({"audio": audio_ext, "visual": visual_ext}, audio_mode="context",
                                  drain_timeout_s=30.0)
    cache.start()
    try:
        for i in range(0, x.size, 1600):  # 0.1 s of audio, then that 0.1 s of camera frames
            cache.on_audio(70.0 + i / SR, x[i:i + 1600], SR)
            for f in frames[i // 1600: i // 1600 + 1]:
                cache.on_frame(f.stamp, f.image)
        win = window(x, 70.0, SR // 2, 3 * SR, frames=[f for f in frames if 70.5 <= f.stamp <= 73.0])
        assert cache.wait_ready(win, timeout_s=30.0)
        got = cache.features_for(win)
        assert got.meta["streaming"]["audio"] == "context" and got.meta["streaming"]["visual"].endswith("cached")
        assert got.audio.x.shape == audio_ext(win).x.shape and got.visual.x.shape == visual_ext(win).x.shape
        assert set(got.meta["stage_s"]) == {"audio", "visual"}
    finally:
        cache.close()
    info = cache.describe()
    assert not cache.running and info["queued_audio"] == info["queued_frames"] == 0
    assert info["audio_frames"] == info["embeddings"] == 0
