"""create_backend: torch vs onnxruntime on collated batches; unavailable backends say what to use."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.backends import BackendUnavailable, create_backend
from synctva_ros.config import RuntimeConfig
from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures, collate


def _utt(rng: np.random.Generator, dims: dict, present: tuple[str, ...]) -> UtteranceFeatures:
    u = UtteranceFeatures()
    for m in present:
        n = int(rng.integers(1, 9))
        setattr(u, m, ModalityFeatures(rng.standard_normal((n, dims[m])).astype(np.float32),
                                       np.sort(rng.random(n)).astype(np.float32)))
    return u


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("context_turns", [0, 2])
def test_onnxruntime_backend_matches_torch(tmp_path, make_model, context_turns: int) -> None:
    model = make_model(context_turns)
    rt = RuntimeConfig(backend="onnxruntime", cache_dir=str(tmp_path), threads=1)
    ort_b = create_backend(rt, model, {"name": "t"})
    torch_b = create_backend(RuntimeConfig(backend="torch"), model, {"name": "t"})
    assert ort_b.name == "onnxruntime" and ort_b.tolerance == 1e-4
    rng = np.random.default_rng(0)
    items = [_utt(rng, model.dims, p) for p in [("text", "audio", "visual"), ("audio",), (), ("text", "visual")]]
    ctx = [[rng.standard_normal(model.dims["text"]).astype(np.float32)] * i for i in range(len(items))]
    batch = collate(items, model.dims, contexts=ctx if context_turns else None, context_turns=context_turns)
    lo, co = ort_b.infer(batch)
    lt, ct = torch_b.infer(batch)
    assert lo.dtype == np.float32 and lo.shape == lt.shape and co.shape == (4, 3)
    assert np.abs(_softmax(lo) - _softmax(lt)).max() < ort_b.tolerance
    assert np.abs(co - ct).max() < ort_b.tolerance
    assert np.all(co[2] == 0)  # the row with no modality


def test_unknown_backend_and_cuda_without_gpu(make_model) -> None:
    import torch

    with pytest.raises(BackendUnavailable, match="use one of"):
        create_backend(type("R", (), {"backend": "nope"})(), make_model(), {})
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="cpu"):
            create_backend(RuntimeConfig(backend="torch", device="cuda"), make_model(), {})


@pytest.mark.parametrize("context_turns", [0, 2])
def test_subsets_in_one_run_match_torch_one_call_per_subset(tmp_path, make_model, context_turns: int) -> None:
    from synctva_ros.backends.base import Backend
    from synctva_ros.backends.export import cached_fusion_onnx
    from synctva_ros.backends.onnx_backend import OnnxRuntimeBackend

    model = make_model(context_turns)
    ort_cfg = RuntimeConfig(backend="onnxruntime", cache_dir=str(tmp_path), threads=1)
    ort_b = create_backend(ort_cfg, model, {"name": "t"})
    torch_b = create_backend(RuntimeConfig(backend="torch"), model, {"name": "t"})
    assert ort_b.subsets and ort_b.path.name.startswith("fusion_subsets-")
    rng = np.random.default_rng(1)
    items = [_utt(rng, model.dims, p) for p in [("text", "audio", "visual"), ("text", "audio"), ("audio",), ()]]
    ctx = [[rng.standard_normal(model.dims["text"]).astype(np.float32)] * i for i in range(len(items))]
    batch = collate(items, model.dims, contexts=ctx if context_turns else None, context_turns=context_turns)
    keep = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 0]], bool)
    lo, co = ort_b.infer_subsets(batch, keep)
    lt, ct = Backend.infer_subsets(torch_b, batch, keep)  # the loop: one torch call per subset
    assert lo.shape == (4, 3, 7) and co.shape == (4, 3, 3) and lo.dtype == np.float32
    for s in range(3):
        assert np.abs(_softmax(lo[:, s]) - _softmax(lt[:, s])).max() < ort_b.tolerance
        assert np.abs(co[:, s] - ct[:, s]).max() < ort_b.tolerance
    one, _ = ort_b.infer(batch)  # infer = the all-modalities subset of the same graph
    assert np.abs(one - lo[:, 0]).max() < 1e-6
    plain = OnnxRuntimeBackend(cached_fusion_onnx(model, {"name": "t"}, cache_dir=tmp_path), threads=1)
    assert not plain.subsets  # the plain graph (TensorRT's fallback) answers subsets one run each
    lp, _ = plain.infer_subsets(batch, keep)
    assert np.abs(_softmax(lp.reshape(-1, 7)) - _softmax(lo.reshape(-1, 7))).max() < ort_b.tolerance


def test_unknown_quantize_is_refused(tmp_path, make_model) -> None:
    from synctva_ros.backends.onnx_backend import OnnxRuntimeBackend

    ort_b = create_backend(RuntimeConfig(backend="onnxruntime", cache_dir=str(tmp_path)), make_model(), {"name": "t"})
    with pytest.raises(ValueError, match="int8"):
        OnnxRuntimeBackend(ort_b.path, quantize="int4")
