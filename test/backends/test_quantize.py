"""runtime.quantize int8: the onnxruntime backend serves the int8 dynamically quantised fusion graph, cached next to
the fp32 export, within its stated tolerance of torch fp32 on the shipped checkpoint's real windows."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from synctva_ros.backends import create_backend
from synctva_ros.backends.engine_cache import cache_counters
from synctva_ros.backends.export import cached_fusion_onnx
from synctva_ros.backends.quantize import INT8_SETTINGS, INT8_TOLERANCE, cached_quantized_onnx
from synctva_ros.config import ConfigError, RuntimeConfig, load_config
from meld_minilm_windows import demo_pipeline, softmax, window_features


def test_int8_within_its_tolerance_of_torch_fp32_on_real_windows(tmp_path) -> None:
    pipe = demo_pipeline(tmp_path)  # torch fp32, the reference
    try:
        windows = window_features(pipe)
        int8 = create_backend(RuntimeConfig(backend="onnxruntime", threads=1, cache_dir=str(tmp_path), quantize="int8"),
                              pipe.model, pipe.manifest)
        fp32 = create_backend(RuntimeConfig(backend="onnxruntime", threads=1, cache_dir=str(tmp_path)),
                              pipe.model, pipe.manifest)
        assert (int8.name, int8.quantize, int8.tolerance) == ("onnxruntime-int8", "int8", INT8_TOLERANCE)
        assert (fp32.name, fp32.quantize, fp32.tolerance) == ("onnxruntime", "none", 1e-4)
        assert int8.path.parent == fp32.path.parent and int8.path.name.startswith("fusion_subsets_int8-")
        assert int8.path.stat().st_size < 0.4 * fp32.path.stat().st_size  # int8 weights: a quarter, plus scales
        worst = 0.0
        for feats, batch in windows:
            keep, _ = pipe.subsets(feats)
            ref, _ = pipe.backend.infer_subsets(batch, keep)
            got, contrib = int8.infer_subsets(batch, keep)
            worst = max(worst, float(np.abs(softmax(got) - softmax(ref)).max()))
            assert np.all(np.isfinite(contrib)) and np.allclose(contrib.sum(-1), 1.0, atol=1e-5)
        assert 0.0 < worst < int8.tolerance  # quantised, and within what the backend promises
    finally:
        pipe.close()


def test_the_int8_file_is_cached_under_its_own_key(tmp_path, make_model) -> None:
    import onnx  # the quantiser's own dependency

    model = make_model()
    src = cached_fusion_onnx(model, {"name": "t"}, cache_dir=tmp_path, subsets=True)
    first = cached_quantized_onnx(src, tmp_path)
    hits = cache_counters()["hits"]
    assert cached_quantized_onnx(src, tmp_path) == first and cache_counters()["hits"] == hits + 1
    assert first.parent == src.parent and first.name.startswith("fusion_subsets_int8-")
    parts = __import__("json").loads(first.with_name(first.name + ".json").read_text())
    assert parts["source"] == src.name and parts["per_channel"] == INT8_SETTINGS["per_channel"]
    ops = {n.op_type for n in onnx.load(str(first)).graph.node}
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
    other = cached_quantized_onnx(cached_fusion_onnx(make_model(seed=1), {"name": "t"}, cache_dir=tmp_path,
                                                     subsets=True), tmp_path)
    assert other != first  # other weights, another key


def test_quantize_is_a_checked_runtime_option(make_model, caplog) -> None:
    assert load_config(None, ["runtime.quantize=int8"]).runtime.quantize == "int8"
    with pytest.raises(ConfigError, match="quantize"):
        load_config(None, ["runtime.quantize=int4"])
    with caplog.at_level(logging.WARNING, logger="synctva_ros.backends"):
        backend = create_backend(RuntimeConfig(backend="torch", quantize="int8"), make_model(), {"name": "t"})
    assert backend.name == "torch" and "onnxruntime only" in caplog.text
