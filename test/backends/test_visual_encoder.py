"""The visual extractor's ResNet trunk served by the selected backend (issue 12): onnxruntime embeddings equal torch's
(1e-4), the export cached and content-checked, torch as the fallback.

ImageNet ResNet-50 weights cannot be downloaded here, so these tests use a **random-weight ResNet-18** (torchvision's
initialisation, seed 0) at 64² pixels: the same graph family and export path as the paper profile's ResNet-50 at
224² (bottleneck instead of basic blocks), a fraction of its cost. The ResNet-50 figures in docs/performance.md come
from a random-weight ResNet-50 too.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch

from synctva_ros.backends import encoder_serving as es
from synctva_ros.backends import visual_encoder as ve
from synctva_ros.backends.engine_cache import cache_counters
from synctva_ros.backends.export import ExportError
from synctva_ros.config import RuntimeConfig
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.features.torchvision_compat import ensure_torchvision
from synctva_ros.features.visual import ResNetVisual

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory) -> ResNetVisual:
    """A random-weight ResNet-18 (seed 0; no ImageNet weights here) at 64² pixels, no face crop, 8 frames."""
    ensure_torchvision()
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("resnet") / "resnet18_random.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return ResNetVisual("resnet18", path, fps=4.0, max_frames=8, face_crop=False, image_size=64)


def _images(k: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (72, 96, 3), dtype=np.uint8) for _ in range(k)]


def _rt(tmp_path, **kw) -> RuntimeConfig:
    return RuntimeConfig(**{"backend": "onnxruntime", "threads": 1, "cache_dir": str(tmp_path), **kw})


def test_onnxruntime_serves_the_trunk_with_torch_embeddings(resnet18, tmp_path) -> None:
    """Embeddings within 1e-4 of torch for 1, 5 and 8 frames (the export traced 2: the frames axis is dynamic), and
    the window's nodes too; backend torch clears the runner."""
    images = _images(8)
    refs = {k: resnet18.encode_images(images[:k]) for k in (1, 5, 8)}
    frames = [TimedFrame(1.0 + 0.1 * i, im) for i, im in enumerate(images)]
    window = UtteranceWindow(1.0, 2.0, frames=frames)
    ref_nodes = resnet18(window)
    assert ve.serve_visual_encoder(resnet18, _rt(tmp_path)) == "onnxruntime"
    try:
        assert isinstance(resnet18.runner, ve.OrtVisualRunner)
        assert resnet18.runner.path.name.startswith("visual_encoder-")
        assert resnet18.runner.providers == ["CPUExecutionProvider"]
        for k, ref in refs.items():
            got = resnet18.encode_images(images[:k])
            assert got.shape == ref.shape == (k, 512) and got.dtype == np.float32
            assert np.abs(got - ref).max() < 1e-4
        nodes = resnet18(window)
        assert np.abs(nodes.x - ref_nodes.x).max() < 1e-4 and np.array_equal(nodes.t, ref_nodes.t)
        assert ve.serve_visual_encoder(resnet18, _rt(tmp_path, backend="torch")) == "torch"
        assert resnet18.runner is None
    finally:
        resnet18.runner = None


def test_the_export_is_cached_and_rebuilt_when_its_content_differs(resnet18, tmp_path) -> None:
    before = cache_counters()
    assert ve.serve_visual_encoder(resnet18, _rt(tmp_path)) == "onnxruntime"
    path = resnet18.runner.path
    built = cache_counters()
    assert built["builds"] == before["builds"] + 1
    # a second start finds the file under the same key, checks its content and reuses it
    assert ve.serve_visual_encoder(resnet18, _rt(tmp_path)) == "onnxruntime" and resnet18.runner.path == path
    reused = cache_counters()
    assert reused["builds"] == built["builds"] and reused["hits"] == built["hits"] + 1
    # a file whose content no longer matches the hash recorded at export is not loaded: exported again
    with open(path, "ab") as f:
        f.write(b"\0" * 16)
    try:
        assert ve.serve_visual_encoder(resnet18, _rt(tmp_path)) == "onnxruntime" and resnet18.runner.path == path
    finally:
        resnet18.runner = None
    rebuilt = cache_counters()
    assert rebuilt["rebuilt_mismatch"] == reused["rebuilt_mismatch"] + 1 and rebuilt["builds"] == reused["builds"] + 1
    assert not path.read_bytes().endswith(b"\0" * 16)
    # what determines the graph is the key: another input size is another file
    resnet18.image_size = 48
    try:
        assert ve.cached_visual_onnx(resnet18, tmp_path) != path
    finally:
        resnet18.image_size = 64


def test_torch_is_the_fallback_when_onnxruntime_cannot_start(resnet18, tmp_path, monkeypatch, caplog) -> None:
    """onnxruntime missing (its import fails): torch serves, the warning is logged and counted; same for an export
    the tracer cannot take and for a runner whose embeddings are not torch's."""
    ref = resnet18.encode_images(_images(2))
    n = es.encoder_fallbacks().get("visual", 0)
    with monkeypatch.context() as m, caplog.at_level(logging.WARNING, logger="synctva_ros.backends.visual_encoder"):
        m.setitem(sys.modules, "onnxruntime", None)
        assert ve.serve_visual_encoder(resnet18, _rt(tmp_path)) == "torch"
    assert resnet18.runner is None
    assert "visual encoder resnet18 stays on torch: onnxruntime not installed" in caplog.text
    assert np.array_equal(resnet18.encode_images(_images(2)), ref)

    def broken(*_a, **_k):
        raise ExportError("tracer says no")

    with monkeypatch.context() as m:
        m.setattr(ve, "cached_visual_onnx", broken)
        assert ve.serve_visual_encoder(resnet18, _rt(tmp_path)) == "torch" and resnet18.runner is None
    with monkeypatch.context() as m, caplog.at_level(logging.WARNING, logger="synctva_ros.backends.visual_encoder"):
        m.setattr(ve, "visual_parity", lambda *_a: 0.5)
        assert ve.serve_visual_encoder(resnet18, _rt(tmp_path)) == "torch" and resnet18.runner is None
    assert "differ from torch by 0.5 (> 1e-03)" in caplog.text
    assert es.encoder_fallbacks()["visual"] == n + 3


def test_int8_and_tensorrt_serve_the_fp32_graph_in_onnxruntime(resnet18, tmp_path, caplog) -> None:
    """The trunk has no MatMul/Gemm weights for dynamic int8: the fp32 graph serves; with tensorrt the encoders run
    in onnxruntime (on the CPU here)."""
    try:
        with caplog.at_level(logging.INFO, logger="synctva_ros.backends.visual_encoder"):
            assert ve.serve_visual_encoder(resnet18, _rt(tmp_path, quantize="int8")) == "onnxruntime"
        assert "no MatMul/Gemm weights" in caplog.text and "_int8" not in resnet18.runner.path.name
        assert ve.serve_visual_encoder(resnet18, _rt(tmp_path, backend="tensorrt")) == "onnxruntime"
    finally:
        resnet18.runner = None
    assert ve.serve_visual_encoder(None, _rt(tmp_path)) == ""
    assert ve.serve_visual_encoder(object(), _rt(tmp_path)) == ""  # e.g. face-expression embeddings


def test_pipeline_probabilities_on_onnxruntime_equal_torch(resnet18, tmp_path) -> None:
    """A visual-only checkpoint on this ResNet-18: the pipeline on onnxruntime (network and trunk) gives torch's class
    probabilities within 1e-4."""
    from synctva_ros.bench.setups import dev_checkpoint
    from synctva_ros.config import load_config
    from synctva_ros.pipeline import EmotionPipeline

    over = {"features.visual_encoder": "resnet18", "features.visual_weights": resnet18.weights,
            "features.face_crop": False, "features.image_size": 64, "features.visual_fps": 4.0,
            "features.max_frames": 8, "features.face_expert": False, "features.streaming": False,
            "runtime.threads": 1, "runtime.cache_dir": str(tmp_path)}
    cfg = load_config("demo", over)
    ckpt = dev_checkpoint(tmp_path / "ckpt", cfg, {"text": None, "audio": None, "visual": resnet18}, steps=2)
    pipes = {b: EmotionPipeline(load_config("demo", {**over, "runtime.backend": b, "runtime.checkpoint": str(ckpt)}))
             for b in ("torch", "onnxruntime")}
    try:
        assert pipes["torch"].visual_runtime == "torch" and pipes["onnxruntime"].visual_runtime == "onnxruntime"
        assert pipes["onnxruntime"].describe()["visual_encoder"] == "onnxruntime"
        for i in range(3):
            frames = [TimedFrame(10.0 * i + 0.1 * j, im) for j, im in enumerate(_images(6, seed=i))]
            w = UtteranceWindow(10.0 * i, 10.0 * i + 1.0, frames=frames, utterance_id=f"u{i}", dialogue_id="d")
            a, b = pipes["torch"].predict(w), pipes["onnxruntime"].predict(w)
            assert a.active == b.active and b.active["visual"]
            assert np.abs(np.array(a.probabilities) - np.array(b.probabilities)).max() < 1e-4
    finally:
        for p in pipes.values():
            p.close()
