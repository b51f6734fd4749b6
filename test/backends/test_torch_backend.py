"""backends.torch_backend: eager inference equals the model's own forward; precisions and devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synctva_ros.backends.base import BackendUnavailable
from synctva_ros.backends.torch_backend import TorchBackend
from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures, collate
from synctva_ros.core.modalities import MODALITIES

#: Feature widths of the backend tests' models (test/backends/conftest.py).
DIMS = {"text": 24, "audio": 25, "visual": 16}


def _utterances(seed: int = 0) -> list[UtteranceFeatures]:
    """Four utterances: all modalities, no visual, text only, nothing at all."""
    rng = np.random.default_rng(seed)

    def nodes(m: str, n: int) -> ModalityFeatures:
        return ModalityFeatures(rng.standard_normal((n, DIMS[m])).astype(np.float32),
                                np.sort(rng.random(n)).astype(np.float32))

    return [UtteranceFeatures(nodes("text", 5), nodes("audio", 4), nodes("visual", 3)),
            UtteranceFeatures(nodes("text", 2), nodes("audio", 6), None),
            UtteranceFeatures(nodes("text", 7), None, None),
            UtteranceFeatures(None, None, None)]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_infer_equals_the_models_forward_and_gives_probabilities(make_model) -> None:
    model = make_model()
    assert model.dims == DIMS
    batch = collate(_utterances(), DIMS)
    logits, contrib = TorchBackend(model).infer(batch)
    with torch.no_grad():
        ref_logits, ref_contrib = model.forward_batch(batch)
    assert logits.dtype == contrib.dtype == np.float32
    assert logits.shape == (4, model.num_classes) and contrib.shape == (4, len(MODALITIES))
    np.testing.assert_array_equal(logits, ref_logits.numpy())
    np.testing.assert_array_equal(contrib, ref_contrib.numpy())
    probs = _softmax(logits)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert (probs >= 0).all()
    # contributions: sum to 1 over the present modalities, 0 for absent ones, none at all for an empty row
    present = np.array([[True, True, True], [True, True, False], [True, False, False], [False, False, False]])
    np.testing.assert_allclose(contrib.sum(axis=1), present.any(axis=1).astype(np.float32), atol=1e-6)
    assert (contrib[~present] == 0).all()
    np.testing.assert_allclose(probs[3], np.full(model.num_classes, 1 / model.num_classes), rtol=1e-6)


def test_model_is_put_in_eval_mode_so_inference_is_deterministic(make_model) -> None:
    model = make_model().train()
    backend = TorchBackend(model)
    assert not backend.model.training and backend.model is model
    batch = collate(_utterances(1), DIMS)
    a, b = backend.infer(batch), backend.infer(batch)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_a_backend_on_another_device_gets_a_copy_and_never_moves_the_shared_model(make_model) -> None:
    """Issue 10: ``nn.Module.to`` moves in place; a second backend on another device must not pull the model from
    under the first. The ``meta`` device stands in for a GPU here (no data, but a real second device)."""
    model = make_model()
    cpu = TorchBackend(model)
    other = TorchBackend(model, device="meta")
    assert cpu.model is model and other.model is not model
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {p.device.type for p in other.model.parameters()} == {"meta"}
    batch = collate(_utterances(2), DIMS)
    with torch.no_grad():
        ref = model.forward_batch(batch)[0].numpy()
    np.testing.assert_array_equal(cpu.infer(batch)[0], ref)  # the first backend still works on its device


def test_context_inputs_are_used(make_model) -> None:
    model = make_model(context_turns=2)
    items = _utterances(2)[:3]
    prev = [np.random.default_rng(3).standard_normal(DIMS["text"]).astype(np.float32)]
    with_ctx = collate(items, DIMS, contexts=[prev, [], prev], context_turns=2)
    without = collate(items, DIMS, contexts=[[], [], []], context_turns=2)
    backend = TorchBackend(model)
    lw, _ = backend.infer(with_ctx)
    lo, _ = backend.infer(without)
    with torch.no_grad():
        np.testing.assert_array_equal(lw, model.forward_batch(with_ctx)[0].numpy())
    assert not np.allclose(lw[0], lo[0]) and not np.allclose(lw[2], lo[2])
    np.testing.assert_allclose(lw[1], lo[1], atol=1e-6)  # the row without context is unchanged


def test_bf16_stays_within_its_stated_tolerance(make_model) -> None:
    model = make_model()
    batch = collate(_utterances(4), DIMS)
    fp32 = TorchBackend(model).infer(batch)[0]
    bf16 = TorchBackend(model, precision="bf16")
    assert bf16.tolerance == 2e-2 and TorchBackend(model).tolerance == 1e-6
    lb, cb = bf16.infer(batch)
    assert lb.dtype == np.float32 and lb.shape == fp32.shape
    assert np.abs(_softmax(lb) - _softmax(fp32)).max() < bf16.tolerance
    assert (_softmax(lb).argmax(axis=1) == _softmax(fp32).argmax(axis=1)).mean() >= 0.75


def test_unavailable_device_or_precision_says_what_to_use(make_model) -> None:
    with pytest.raises(BackendUnavailable, match="use precision bf16 or fp32"):
        TorchBackend(make_model(), device="cpu", precision="fp16")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(BackendUnavailable, match="CUDA is not available; use runtime.device:=cpu"):
        TorchBackend(make_model(), device="cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_precisions_stay_within_their_stated_tolerance(make_model, precision) -> None:
    model = make_model()
    batch = collate(_utterances(5), DIMS)
    cpu = TorchBackend(make_model()).infer(batch)[0]
    gpu = TorchBackend(model, device="cuda", precision=precision)
    logits, contrib = gpu.infer(batch)
    assert logits.dtype == np.float32 and contrib.shape == (4, len(MODALITIES))
    # fp32 on a GPU differs from the CPU by kernel rounding only, far inside the fp16 tolerance
    tol = max(gpu.tolerance, 1e-4)
    assert np.abs(_softmax(logits) - _softmax(cpu)).max() < tol
