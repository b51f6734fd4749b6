"""The audio mode is chosen once, from one default: the configuration schema's."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from stream_helpers import SR, speechlike, stream, window

from synctva_ros.config import FeaturesConfig
from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.streaming import AUDIO_MODES, DEFAULT_AUDIO_MODE, StreamingFeatureCache
from synctva_ros.streaming.audio_context import ContextAudio
from synctva_ros.streaming.audio_exact import ExactAudio
from synctva_ros.streaming.audio_modes import build_audio_stream

_OPTIONS = dict(buffer_s=30.0, block_s=0.5, left_context_s=1.0, gap_tolerance_s=0.02, exact=True, rotate_s=60.0)


def test_the_default_and_the_modes_are_the_configurations() -> None:
    field = {f.name: f for f in dataclasses.fields(FeaturesConfig)}["streaming_audio"]
    assert DEFAULT_AUDIO_MODE == FeaturesConfig().streaming_audio == field.default
    assert set(AUDIO_MODES) == set(field.metadata["choices"])


def test_the_cache_uses_the_default_mode(audio_ext: OpenSmileAudio) -> None:
    cache = StreamingFeatureCache({"audio": audio_ext})
    try:
        assert cache.audio_mode == FeaturesConfig().streaming_audio == cache.audio.mode
    finally:
        cache.close()


@pytest.mark.parametrize("mode,cls", [("exact", ExactAudio), ("context", ContextAudio)])
def test_each_mode_builds_its_class(audio_ext: OpenSmileAudio, mode: str, cls: type) -> None:
    s = build_audio_stream(mode, audio_ext, Counter(), **_OPTIONS)
    try:
        assert type(s) is cls and s.mode == mode
    finally:
        s.close()


def test_unknown_mode_is_refused(audio_ext: OpenSmileAudio) -> None:
    with pytest.raises(ValueError, match="audio_mode"):
        build_audio_stream("live", audio_ext, Counter(), **_OPTIONS)
    with pytest.raises(ValueError, match="audio_mode"):
        StreamingFeatureCache({}, audio_mode="live")


def test_nothing_to_stream_without_low_level_descriptors() -> None:
    """Functionals only: no stream is built and every window goes to the batch extractor."""
    ext = OpenSmileAudio("eGeMAPSv02", sample_rate=SR, level="functionals")
    assert build_audio_stream("context", ext, Counter(), **_OPTIONS) is None
    assert build_audio_stream("exact", None, Counter(), **_OPTIONS) is None
    cache = StreamingFeatureCache({"audio": ext})
    x = speechlike(2.0, seed=15)
    stream(cache, x, 3.0)
    win = window(x, 3.0, 0, x.size)
    got = cache.features_for(win)
    assert got.meta["streaming"]["audio"] == "batch:functionals_only"
    np.testing.assert_array_equal(got.audio.x, ext(win).x)
    assert cache.describe()["audio_frames"] == 0
