"""features.split_text_top: the checkpoint's fine-tuned text layers run in the text stage, served by the backend's
engine, and the answers stay those of the network that holds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synctva_ros.backends.encoder_serving import encoder_fallbacks
from synctva_ros.backends.quantize import INT8_TOLERANCE
from synctva_ros.backends.text_top_serving import (OrtTextTop, TextTopApplied, TorchTextTop, serve_text_top,
                                                   split_text_top)
from synctva_ros.config import RuntimeConfig
from synctva_ros.evaluation.offline import dataset_windows
from synctva_ros.model.text_top import TextTopLayers
from meld_minilm_windows import SAMPLE, demo_pipeline

N_WINDOWS = 6


def _probabilities(pipe) -> np.ndarray:
    """``(N_WINDOWS, C)`` probabilities of the sample's first windows, predicted in order (dialogue context kept)."""
    pipe.reset_dialogue()
    out = np.array([pipe.predict(w).probabilities for w, _ in dataset_windows(SAMPLE, limit=N_WINDOWS)])
    pipe.reset_dialogue()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Probabilities of the unsplit network in torch fp32 (the layers inside the fusion model)."""
    pipe = demo_pipeline(tmp_path_factory.mktemp("text_top_ref"))
    try:
        assert pipe.text_top is None and pipe.describe()["text_top"] == ""
        yield _probabilities(pipe)
    finally:
        pipe.close()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_the_split_layers_give_the_unsplit_networks_answers_on_real_windows(reference, tmp_path, backend):
    pipe = demo_pipeline(tmp_path, backend, split_text_top=True)
    try:
        assert isinstance(pipe.model.text_top, TextTopApplied) and pipe.text_top is not None
        assert not any(k.startswith("text_top.") for k in pipe.model.state_dict())  # the network holds no layers
        assert pipe.describe()["text_top"] == backend
        if backend == "onnxruntime":
            runner = pipe.text_top_runner
            assert isinstance(runner, OrtTextTop) and runner.path.name.startswith("text_top-")
            assert "text_prefix" in runner.input_names  # the layers take the context's word pieces
            assert not any(n.startswith("text_prefix") for n in pipe.backend.input_names)  # the network does not
        got = _probabilities(pipe)
        assert np.abs(got - reference).max() < 1e-4
        if backend == "torch":  # the bench counts the layers' FLOPs in the text stage, over the window's context
            from synctva_ros.bench.flops import stage_flops

            ws = [w for w, _ in dataset_windows(SAMPLE, limit=3)]
            alone, after = stage_flops(pipe, ws[2])["text"], stage_flops(pipe, ws[2], ws[:2])["text"]
            assert (alone["context_turns"], after["context_turns"]) == (0, 2)
            assert after["tokens"] > alone["tokens"] and after["top_flops"] > alone["top_flops"] > 0
            assert after["flops"] >= after["top_flops"] and not pipe.dialogue.turns(ws[2].dialogue_id)
    finally:
        pipe.close()


def test_int8_layers_stay_within_the_int8_tolerance(reference, tmp_path):
    pipe = demo_pipeline(tmp_path, "onnxruntime", split_text_top=True, **{"runtime.quantize": "int8"})
    try:
        assert pipe.describe()["text_top"] == "onnxruntime-int8"
        worst = float(np.abs(_probabilities(pipe) - reference).max())
        assert 0.0 < worst < INT8_TOLERANCE  # quantised, and within what the int8 backend promises
    finally:
        pipe.close()


def _random_layers(relative: bool) -> TextTopLayers:
    spec = {"hidden": 32, "heads": 4, "intermediate": 64, "act": "gelu", "eps": 1e-12, "dropout": 0.0,
            "layers": [0, 1], "text_layer": 0, "special_tokens": 2, "context_keys": True}
    if relative:
        spec.update(model_type="mpnet", relative_buckets=32, relative_max_distance=128)
    torch.manual_seed(0)
    top = TextTopLayers(spec).eval()
    with torch.no_grad():
        top.special.normal_()
        top.rel_bias.normal_()
    return top


@pytest.mark.parametrize("relative", [False, True])
def test_onnxruntime_layers_match_torch_with_and_without_a_prefix(tmp_path, relative):
    top = _random_layers(relative)
    before = encoder_fallbacks().get("text_top", 0)
    runner = serve_text_top(top, RuntimeConfig(backend="onnxruntime", threads=1, cache_dir=str(tmp_path)))
    assert isinstance(runner, OrtTextTop) and encoder_fallbacks().get("text_top", 0) == before
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 9, 32, generator=g)
    mask = torch.ones(1, 9, dtype=torch.bool)
    prefix = torch.randn(1, 4, 32, generator=g)
    pmask = torch.ones(1, 4, dtype=torch.bool)
    with torch.inference_mode():
        ref_none, ref_prefix = top(x, mask), top(x, mask, prefix, pmask)
    assert (runner(x, mask) - ref_none).abs().max() < 1e-4  # one masked prefix state = no prefix
    assert (runner(x, mask, prefix[:, :0], pmask[:, :0]) - ref_none).abs().max() < 1e-4  # an empty prefix too
    assert (runner(x, mask, prefix, pmask) - ref_prefix).abs().max() < 1e-4
    assert (ref_prefix - ref_none).abs().max() > 1e-2  # the prefix matters: the checks above can fail


def test_split_is_idempotent_and_other_backends_serve_torch(tmp_path):
    top = _random_layers(False)

    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text_top = top

    holder = Holder()
    taken = split_text_top(holder)
    assert taken is top and isinstance(holder.text_top, TextTopApplied)
    assert holder.text_top.spec["context_keys"] is False and split_text_top(holder) is None
    runner = serve_text_top(taken, RuntimeConfig(backend="torch", cache_dir=str(tmp_path)))
    assert isinstance(runner, TorchTextTop) and runner.name == "torch"
    assert serve_text_top(None, RuntimeConfig()) is None


def test_an_onnxruntime_failure_is_a_runtime_error_naming_the_stage(tmp_path):
    runner = serve_text_top(_random_layers(False), RuntimeConfig(backend="onnxruntime", threads=1,
                                                                  cache_dir=str(tmp_path)))
    assert isinstance(runner, OrtTextTop)
    wrong = torch.zeros(1, 3, 16)  # 16 features where the layers take 32: onnxruntime's own InvalidArgument
    with pytest.raises(RuntimeError, match="fine-tuned text layers") as info:
        runner(wrong, torch.ones(1, 3, dtype=torch.bool))
    assert "(1, 3, 16)" in str(info.value) and type(info.value.__cause__).__module__.startswith("onnxruntime")
