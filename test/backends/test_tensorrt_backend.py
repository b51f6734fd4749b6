"""TensorRT backend: cache keys, profile shapes and the background-build fallback (without TensorRT);
engine parity only where tensorrt and a GPU exist."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from synctva_ros.backends import BackendUnavailable, create_backend
from synctva_ros.backends.engine_cache import CachedArtifact, cache_key, cached_build
from synctva_ros.backends.export import example_fusion_inputs, fusion_input_names
from synctva_ros.backends.switching import SwitchingBackend
from synctva_ros.backends.tensorrt_backend import engine_parts, profile_shapes, tensorrt_available
from synctva_ros.backends.torch_backend import TorchBackend
from synctva_ros.config import RuntimeConfig
from synctva_ros.core.batch import Batch


def _batch(model, b: int = 2) -> Batch:
    import torch

    args = example_fusion_inputs(model, batch=b, seed=1, absent={"visual": [0]})
    return Batch(*args[:9], torch.full((b,), -1), *(args[9:] or (None, None)))


def test_tensorrt_unavailable_names_alternatives(tmp_path, make_model) -> None:
    ok, why = tensorrt_available()
    if ok:
        pytest.skip("tensorrt and a GPU are available here")
    with pytest.raises(BackendUnavailable, match="use backend onnxruntime or torch"):
        create_backend(RuntimeConfig(backend="tensorrt", device="cuda", cache_dir=str(tmp_path)), make_model(), {},
                       tmp_path)


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


def test_cached_build_builds_once(tmp_path) -> None:
    calls = []

    def build(p):
        calls.append(p)
        p.write_bytes(b"engine")

    art = CachedArtifact(tmp_path, "tensorrt", "fusion", "engine", {"x": 1})
    path, built = cached_build(art, build)
    assert built and path.read_bytes() == b"engine"
    path2, built2 = cached_build(CachedArtifact(tmp_path, "tensorrt", "fusion", "engine", {"x": 1}), build)
    assert path2 == path and not built2 and len(calls) == 1
    assert art.describe() == {"x": 1}

    def failing(p):
        p.write_bytes(b"half")
        raise RuntimeError("build failed")

    bad = CachedArtifact(tmp_path, "tensorrt", "fusion", "engine", {"x": 2})
    with pytest.raises(RuntimeError):
        cached_build(bad, failing)
    assert not bad.exists() and not list(bad.path.parent.glob("*.tmp"))


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


def test_switching_backend_serves_fallback_until_ready(make_model) -> None:
    model = make_model()
    other = make_model(seed=5)
    gate = threading.Event()

    def build():
        gate.wait(10)
        b = TorchBackend(other)
        b.name = "primary"
        return b

    sw = SwitchingBackend(TorchBackend(model), build, primary_name="primary")
    batch = _batch(model)
    first, _ = sw.infer(batch)
    assert sw.name == "torch" and not sw.ready.is_set()
    np.testing.assert_allclose(first, TorchBackend(model).infer(batch)[0])
    gate.set()
    assert sw.wait_ready(10)
    after, _ = sw.infer(batch)
    assert sw.name == "primary" and sw.error is None and sw.build_s is not None
    np.testing.assert_allclose(after, TorchBackend(other).infer(batch)[0])


def test_switching_backend_keeps_fallback_on_failure(make_model, caplog) -> None:
    model = make_model()

    def build():
        raise BackendUnavailable("engine build failed: use backend onnxruntime")

    sw = SwitchingBackend(TorchBackend(model), build)
    assert sw.wait_ready(10)
    assert isinstance(sw.error, BackendUnavailable)
    assert sw.name == "torch"
    assert sw.infer(_batch(model))[0].shape == (2, model.num_classes)
    assert any("could not be built" in r.message for r in caplog.records)


def test_tensorrt_engine_matches_torch(tmp_path, make_model) -> None:
    ok, why = tensorrt_available()
    if not ok:
        pytest.skip(f"TensorRT not testable here: {why}")
    model = make_model()
    rt = RuntimeConfig(backend="tensorrt", device="cuda", precision="fp32", cache_dir=str(tmp_path))
    sw = create_backend(rt, model, {"name": "t"}, tmp_path)
    assert sw.wait_ready(600) and sw.error is None, sw.error
    batch = _batch(model, 3)
    lt, ct = TorchBackend(make_model()).infer(batch)
    lg, cg = sw.infer(batch)
    assert sw.name == "tensorrt"
    p = lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)  # noqa: E731
    assert np.abs(p(lg) - p(lt)).max() < sw.tolerance
    assert np.abs(np.asarray(cg) - np.asarray(ct)).max() < sw.tolerance  # modality contributions too
