from __future__ import annotations

import logging

import numpy as np
import pytest

from synctva_ros.features.audio import MIN_DURATION_S, OpenSmileAudio
from synctva_ros.core.codecs import resample
from synctva_ros.core.window import UtteranceWindow


def _tone(seconds: float, sr: int = 16000, f0: float = 180.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    # a voiced-like harmonic signal with a slow amplitude envelope
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * (0.3 + 0.2 * np.sin(2 * np.pi * 2 * t))
    return (0.3 * x).astype(np.float32)


@pytest.fixture(scope="module")
def egemaps():
    return OpenSmileAudio("eGeMAPSv02", 16000, max_nodes=8)


def test_lld_nodes_pooled_with_times(egemaps):
    w = UtteranceWindow(10.0, 12.0, audio=_tone(2.0), sample_rate=16000, audio_start=10.0)
    f = egemaps(w)
    assert egemaps.dim == 25
    assert f.x.shape == (8, 25) and f.x.dtype == np.float32
    assert np.all(np.isfinite(f.x))
    assert np.all(np.diff(f.t) > 0) and 0 <= f.t[0] < 0.15 and 0.85 < f.t[-1] <= 1
    # pooled nodes are the mean of the openSMILE frames they cover
    import opensmile

    lld = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.LowLevelDescriptors)
    frames = lld.process_signal(_tone(2.0), 16000).to_numpy(np.float32)
    first = np.array_split(np.arange(frames.shape[0]), 8)[0]
    np.testing.assert_allclose(f.x[0], np.nan_to_num(frames[first]).mean(0), rtol=1e-5, atol=1e-5)


def test_times_follow_audio_offset_in_window(egemaps):
    x = _tone(1.0)
    late = egemaps(UtteranceWindow(0.0, 2.0, audio=x, audio_start=1.0))
    early = egemaps(UtteranceWindow(0.0, 2.0, audio=x, audio_start=0.0))
    assert late.t.min() >= 0.5 and early.t.max() <= 0.5
    np.testing.assert_allclose(late.t - early.t, 0.5, atol=1e-6)


def test_short_audio_is_padded_and_empty_or_nan_is_none(egemaps, caplog):
    short = egemaps.extract(_tone(0.02), 16000)
    assert short is not None and np.all(np.isfinite(short.x)) and egemaps.padded >= 1
    assert egemaps.extract(np.zeros(0, np.float32), 16000) is None
    assert egemaps.skipped["empty"] >= 1
    bad = _tone(0.5)
    bad[100] = np.nan
    with caplog.at_level(logging.WARNING, logger="synctva_ros.features.audio"):
        assert egemaps.extract(bad, 16000) is None
    assert egemaps.skipped["nonfinite"] == 1
    assert any("NaN" in r.message for r in caplog.records)
    with pytest.raises(ValueError):
        egemaps.extract(np.zeros((2, 100), np.float32), 16000)
    assert MIN_DURATION_S > 0


def test_resampling_gives_same_node_count_and_close_features(egemaps):
    x16 = _tone(1.5, 16000)
    x48 = resample(x16, 16000, 48000)
    assert x48.size == 3 * x16.size
    a, b = egemaps.extract(x16, 16000), egemaps.extract(x48, 48000)
    assert a.x.shape == b.x.shape
    # loudness (feature 0 of eGeMAPS LLDs) survives resampling closely
    np.testing.assert_allclose(a.x[:, 0], b.x[:, 0], rtol=0.1, atol=0.05)


def test_levels_and_feature_sets():
    func = OpenSmileAudio("eGeMAPSv02", level="functionals")
    f = func.extract(_tone(1.0), 16000)
    assert f.x.shape == (1, 88) and func.dim == 88
    both = OpenSmileAudio("eGeMAPSv02", max_nodes=4, level="lld+functionals")
    g = both.extract(_tone(1.0), 16000)
    assert g.x.shape == (4, 25 + 88)
    np.testing.assert_allclose(g.x[0, 25:], g.x[3, 25:])
    np.testing.assert_allclose(g.x[0, 25:], f.x[0], rtol=1e-5)
    is10 = OpenSmileAudio("IS10", max_nodes=4)
    assert is10.extract(_tone(1.0), 16000).x.shape == (4, is10.dim) and is10.dim > 25
    with pytest.raises(ValueError):
        OpenSmileAudio("nope")
    with pytest.raises(ValueError):
        OpenSmileAudio(level="frames")


def test_identity(egemaps):
    ident = egemaps.identity()
    assert ident["feature_set"] == "eGeMAPSv02" and ident["sample_rate"] == 16000 and ident["max_nodes"] == 8
    assert ident["opensmile"] and ident["level"] == "lld"
    assert OpenSmileAudio("eGeMAPSv02", 16000, max_nodes=4).identity() != ident
