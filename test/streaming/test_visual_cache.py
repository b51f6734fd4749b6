"""VisualCache: frame embeddings encoded as frames arrive, looked up (exactly or nearest) at close."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from stream_helpers import camera_frames

from synctva_ros.config import WindowingConfig
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.visual import ResNetVisual
from synctva_ros.streaming import StreamingFeatureCache
from synctva_ros.streaming.visual_cache import VisualCache
from synctva_ros.windowing.windower import UtteranceWindower


def test_visual_cache_exact_and_nearest(visual_ext: ResNetVisual) -> None:
    frames = camera_frames(10.0, 3.0)
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
    n_cached = near.describe()["embeddings"]
    assert n_cached == pytest.approx(3.0 * 2.0 * 2.0, abs=1)
    got = near.features_for(win)
    assert near.stats["visual_miss"] == 0
    assert got.visual.x.shape == ref.x.shape
    np.testing.assert_array_equal(got.visual.t, ref.t)


def test_no_frames_gives_none(visual_ext: ResNetVisual) -> None:
    cache = StreamingFeatureCache({"visual": visual_ext})
    assert cache.features_for(UtteranceWindow(start=0.0, end=1.0)).visual is None


def test_encoding_ticks_follow_a_fixed_grid_and_restart_when_time_goes_back(visual_ext: ResNetVisual) -> None:
    """fps 2 x oversample 2 = 4 encodings per second of a 30 fps camera, on a grid that does not drift."""
    v = VisualCache(visual_ext, Counter(), buffer_s=30.0, oversample=2.0, exact=True, gap_tolerance_s=0.02)
    stamps = [100.0 + i / 30.0 for i in range(90)]
    due = [t for t in stamps if v.due(t)]
    assert len(due) == 12
    assert np.diff(due).max() < 0.25 + 1 / 30.0 + 1e-9  # never more than one camera period late
    v.add(due[0], np.zeros((48, 64, 3), np.uint8), gen=0)
    assert len(v) == 1
    assert v.due(50.0) and len(v) == 0  # a bag restarted: the cache is cleared, the grid starts again


def test_a_frame_encoded_across_a_reset_is_not_cached(visual_ext: ResNetVisual) -> None:
    v = VisualCache(visual_ext, Counter(), buffer_s=1.0, oversample=2.0, exact=True, gap_tolerance_s=0.02)
    image = np.zeros((48, 64, 3), np.uint8)
    v.reset(gen=3)
    v.add(1.0, image, gen=2)  # queued before the reset
    assert len(v) == 0
    for t in (1.0, 1.5, 2.0, 2.5):
        v.add(t, image, gen=3)
    assert len(v) == 3  # older than buffer_s before the newest frame: dropped


def test_zero_stamp_frames_are_encoded_and_looked_up_by_their_arrival_time(visual_ext: ResNetVisual) -> None:
    """Issue 14 item 2: a camera that leaves the stamp at 0. The windower stamps each frame on arrival before the
    frame_keep_hz thinning (10 Hz) and before the sink, so the visual_fps x oversample grid (4 Hz) and the
    window's batch rule run on arrival times, and the window's frames are served from the cache."""
    cache = StreamingFeatureCache({"visual": visual_ext})
    w = UtteranceWindower(WindowingConfig(vad_enabled=False), 16000, sink=cache)
    image = np.zeros((48, 64, 3), np.uint8)
    for i in range(90):  # 3 s of a 30 fps camera, arriving from 60 s on
        w.add_frame(0.0, image, now=60.0 + i / 30)
    assert w.count("frames") == 30 and w.count("thinned_frames") == 60
    assert len(cache.visual) == 12  # 3 s at 4 Hz, on arrival times:
    assert all(how != "miss" for _, how in cache.visual.store.lookup([60.0 + i / 4 for i in range(12)], 0.051))
    w.add_transcript("hi", 60.5, 62.5, True, stamp=62.5)
    (win,) = w.poll(62.9)
    assert all(60.5 <= f.stamp <= 62.5 for f in win.frames) and len(win.frames) == 21
    got = cache.features_for(win)
    assert got.meta["streaming"]["visual"] == "4/4 cached" and cache.stats["visual_miss"] == 0
