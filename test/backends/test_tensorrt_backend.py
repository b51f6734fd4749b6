"""TensorRT backend: cache keys, profile shapes and the background-build fallback (without TensorRT);
engine parity only where tensorrt and a GPU exist."""

from __future__ import annotations
import numpy as np
import pytest
import torch

from synctva_ros.backends import BackendUnavailable, create_backend
from synctva_ros.backends.engine_cache import cache_key
from synctva_ros.backends.export import example_fusion_inputs, fusion_input_names
from synctva_ros.backends.tensorrt_backend import engine_parts, profile_shapes, tensorrt_available
from synctva_ros.backends.torch_backend import TorchBackend
from synctva_ros.config import RuntimeConfig
from synctva_ros.core.batch import Batch
def _batch(model, b: int = 2) -> Batch:

    args = example_fusion_inputs(model, batch=b, seed=1, absent={"visual": [0]})
    return Batch(*args[:9], torch.full((b,), -1), *(args[9:] or (None, None)))
def test_tensorrt_unavailable_names_alternatives(tmp_path, make_model) -> None:
    ok, why = tensorrt_available()
    if ok:
        pytest.skip("tensorrt and a GPU are available here")
    with pytest.raises(BackendUnavailable, match="use backend onnxruntime or torch"):
        create_backend(RuntimeConfig(backend="tensorrt", device="cuda", cache_dir=str(tmp_path)), make_model(), {})
def test_engine_key_changes_with_every_part(tmp_path) -> None:
    onnx_a = tmp_path / "a.onnx"
    onnx_a.write_bytes(b"model-a")
    onnx_b = tmp_path / "b.onnx"
    onnx_b.write_bytes(b"model-b")
    shapes = {"text": ((1, 1, 8), (1, 4, 8), (8, 4, 8))}
    base = engine_parts(onnx_a, "10.3.0", "NVIDIA H100", "9.0", "fp16", shapes)
    assert cache_key(base) == cache_key(engine_parts(onnx_a, "10.3.0", "NVIDIA H100", "9.0", "fp16", dict(shapes)))
    variants = [engine_parts(onnx_b, "10.3.0", "NVIDIA H100", "9.0", "fp16", shapes),
                engine_parts(onnx_a, "10.4.0", "NVIDIA H100", "9.0", "fp16", shapes),
                engine_parts(onnx_a, "10.3.0", "Orin", "8.7", "fp16", shapes),
                engine_parts(onnx_a, "10.3.0", "NVIDIA H100", "9.0", "fp32", shapes),
                engine_parts(onnx_a, "10.3.0", "NVIDIA H100", "9.0", "fp16", {"text": ((1, 1, 8), (1, 4, 8),
                                                                                      (16, 4, 8))})]
    keys = {cache_key(v) for v in variants} | {cache_key(base)}
    assert len(keys) == len(variants) + 1
def test_profile_shapes_cover_every_input(make_model) -> None:
    model = make_model(context_turns=3)
    names = fusion_input_names(model)
    shapes = profile_shapes(names, model.dims, {"text": 64, "audio": 32, "visual": 8}, 3, max_batch=4)
    assert set(shapes) == set(names)
    assert shapes["text"] == ((1, 1, 24), (1, 64, 24), (4, 64, 24))
    assert shapes["audio_mask"] == ((1, 1), (1, 32), (4, 32))
    assert shapes["context"] == ((1, 3, 24), (1, 3, 24), (4, 3, 24))
    for lo, opt, hi in shapes.values():
        assert all(a <= b <= c for a, b, c in zip(lo, opt, hi))
def test_tensorrt_engine_matches_torch(tmp_path, make_model) -> None:
    ok, why = tensorrt_available()
    if not ok:
        pytest.skip(f"TensorRT not testable here: {why}")
    model = make_model()
    rt = RuntimeConfig(backend="tensorrt", device="cuda", precision="fp32", cache_dir=str(tmp_path))
    sw = create_backend(rt, model, {"name": "t"})
    assert sw.wait_ready(600) and sw.error is None, sw.error
    batch = _batch(model, 3)
    lt, ct = TorchBackend(make_model()).infer(batch)
    lg, cg = sw.infer(batch)
    assert sw.name == "tensorrt"
    p = lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)  # noqa: E731
    assert np.abs(p(lg) - p(lt)).max() < sw.tolerance
    assert np.abs(np.asarray(cg) - np.asarray(ct)).max() < sw.tolerance  # modality contributions too
