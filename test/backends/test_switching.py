"""backends.switching: the fallback answers until the primary is built, then the primary; failures keep the fallback."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
import torch

from synctva_ros.backends.base import BackendUnavailable
from synctva_ros.backends.export import example_fusion_inputs
from synctva_ros.backends.onnx_backend import OnnxRuntimeBackend
from synctva_ros.backends.switching import SwitchingBackend
from synctva_ros.backends.torch_backend import TorchBackend
from synctva_ros.config import RuntimeConfig
from synctva_ros.core.batch import Batch


def _batch(model, b: int = 2) -> Batch:
    args = example_fusion_inputs(model, batch=b, seed=1, absent={"visual": [0]})
    return Batch(*args[:9], torch.full((b,), -1), *(args[9:] or (None, None)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


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


def test_build_runs_once_in_a_named_background_thread_and_infer_never_waits(make_model) -> None:
    model = make_model()
    gate, threads = threading.Event(), []

    def build():
        threads.append(threading.current_thread())
        gate.wait(10)
        return TorchBackend(make_model(seed=3), precision="bf16")

    fallback = TorchBackend(model)
    sw = SwitchingBackend(fallback, build, primary_name="slow")
    assert not sw.wait_ready(0.05) and sw.build_s is None and sw.primary is None
    batch = _batch(model)
    for _ in range(3):
        sw.infer(batch)
    # answered while the build is blocked on the gate (no wall-time bound: a loaded CI machine is slow, and a
    # waiting infer would only return after the gate's 10 s timeout, with the build then finished)
    assert not sw.ready.is_set()
    assert sw.current is fallback and sw.tolerance == fallback.tolerance == 1e-6
    time.sleep(0.1)
    gate.set()
    assert sw.wait_ready(10) and sw.wait_ready(0)
    assert len(threads) == 1 and threads[0] is not threading.current_thread()
    assert threads[0].name == "slow-build" and threads[0].daemon
    assert sw.build_s >= 0.1
    assert sw.current is sw.primary and sw.tolerance == sw.primary.tolerance == 2e-2


def test_switch_to_a_real_onnxruntime_primary_is_logged_once(tmp_path, make_model, caplog) -> None:
    pytest.importorskip("onnxruntime")
    model = make_model()
    runtime = RuntimeConfig(backend="onnxruntime", cache_dir=str(tmp_path))
    with caplog.at_level(logging.INFO, logger="synctva_ros.backends.switching"):
        sw = SwitchingBackend(TorchBackend(model), lambda: OnnxRuntimeBackend.from_model(model, {}, runtime),
                              primary_name="onnxruntime")
        assert sw.wait_ready(120) and sw.error is None, sw.error
        batch = _batch(model, 3)
        outs = [sw.infer(batch) for _ in range(3)]
    assert sw.name == "onnxruntime" and isinstance(sw.primary, OnnxRuntimeBackend)
    switches = [r.message for r in caplog.records if r.message.startswith("switching from")]
    assert switches == [f"switching from torch to onnxruntime (built in {sw.build_s:.1f} s)"]
    ref_logits, ref_contrib = TorchBackend(model).infer(batch)
    for logits, contrib in outs:
        assert logits.shape == ref_logits.shape and logits.dtype == np.float32
        assert np.abs(_softmax(logits) - _softmax(ref_logits)).max() < sw.tolerance
        np.testing.assert_allclose(contrib, ref_contrib, atol=1e-4)
