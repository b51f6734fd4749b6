"""The benchmark's speech is rendered once and then read from the cache, also where espeak-ng is missing."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.bench.inputs import bench_speech
from synctva_ros.datasets.speech import EspeakNotFoundError, espeak_binary, render_speech


def test_bench_speech_is_rendered_once_then_read_without_espeak(tmp_path, monkeypatch) -> None:
    try:
        espeak_binary()
    except EspeakNotFoundError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("SYNCTVA_CACHE", str(tmp_path / "cache"))
    x = bench_speech("Why would you tell her?", "s1", 1.5)
    assert x.dtype == np.float32 and x.ndim == 1 and x.size > 8000
    np.testing.assert_array_equal(x, render_speech("Why would you tell her?", speaker="s1", duration_s=1.5))
    (kept,) = (tmp_path / "cache" / "bench" / "speech").glob("*.npy")
    monkeypatch.setenv("PATH", str(tmp_path / "no_binaries"))  # espeak-ng gone: the cached speech still serves
    with pytest.raises(EspeakNotFoundError):
        espeak_binary()
    np.testing.assert_array_equal(bench_speech("Why would you tell her?", "s1", 1.5), x)
    with pytest.raises(EspeakNotFoundError):  # anything else said, by another voice or for another length renders
        bench_speech("Why would you tell her?", "s2", 1.5)
    kept.write_bytes(b"not an array")  # a damaged file is rendered again, not served
    with pytest.raises(EspeakNotFoundError):
        bench_speech("Why would you tell her?", "s1", 1.5)
