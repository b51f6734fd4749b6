"""The visual extractor's ResNet trunk served by the selected backend (issue 12): onnxruntime (CPU or CUDA), torch
fallback.

The paper profile's visual extractor (:class:`~synctva_ros.features.visual.ResNetVisual`, ResNet-50 up to global
pooling) encodes up to ``features.max_frames`` frames per window. With ``runtime.backend`` ``onnxruntime`` (and
``tensorrt``: onnxruntime on ``runtime.device``, as the text encoder) :func:`serve_visual_encoder` exports the trunk
to ONNX and hands the extractor a runner (:attr:`ResNetVisual.runner`) that answers its
:meth:`~synctva_ros.features.visual.ResNetVisual.encode_inputs` calls with an onnxruntime session. Frame sampling,
face crop and preprocessing stay the extractor's, so its nodes are torch's within the stated parity. The steps
(cache, session, parity, fallback) are :mod:`~synctva_ros.backends.encoder_serving`'s, shared with the text encoder.

* Graph: input ``frames`` ``(K, 3, S, S)`` float32 (ImageNet-normalised, ``S = features.image_size`` pixels),
  output ``embeddings`` ``(K, F)`` float32 (F = 2048 for ResNet-50); ``K`` dynamic (axis ``frames``), ``S`` fixed.
  TorchScript tracer, opset 18 (:func:`~synctva_ros.backends.export.export_visual_encoder`).
* Cache: ``<cache>/onnx/visual_encoder-<key>.onnx`` keyed by the encoder name, the weight file's sha256, ``S``,
  ``F``, the input, exporter, opset, torch and torchvision versions (frame sampling and face crop are not part of
  the graph, so not of the key); content-checked on every reuse, rebuilt when it differs
  (:mod:`~synctva_ros.backends.engine_cache`).
* Parity: at start the runner's embeddings of :data:`PROBE_FRAMES` fixed pseudo-random inputs (seed 0, a frame
  count the tracer did not see, so the dynamic axis is checked too) are compared with torch's: max |Δ| over
  max(1, max |torch embedding|) above :data:`EMBEDDING_TOLERANCE` keeps torch, with a counted warning.
* ``runtime.quantize: int8``: not applied. onnxruntime's dynamic quantisation (:mod:`~synctva_ros.backends.quantize`)
  takes ``MatMul``/``Gemm`` weights and the trunk has none (convolutions up to global pooling, ``fc`` removed), so
  the fp32 graph serves (logged) and :func:`serve_visual_encoder` says ``onnxruntime``.
* Fallback: export or session failures (onnxruntime missing, a file it cannot load) and parity failures are
  logged, counted (:func:`~synctva_ros.backends.encoder_serving.encoder_fallbacks`, kind ``visual``) and the
  extractor keeps torch; nothing raises.
* TensorRT engines for the trunk are not built yet (no TensorRT on the development machines to test them against).

Threads: ``runtime.threads`` intra-op threads (0: onnxruntime's default).
"""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoder_serving import cached_encoder_onnx, run_session, serve_onnx_encoder, serves_encoders
from .export import DEFAULT_OPSET, export_visual_encoder

__all__ = ["EMBEDDING_TOLERANCE", "PROBE_FRAMES", "OrtVisualRunner", "cached_visual_onnx", "probe_inputs",
           "visual_parity", "serve_visual_encoder"]

log = logging.getLogger(__name__)

#: Max |Δ embedding| / max(1, max |torch embedding|) of the onnxruntime fp32 runner accepted at start.
EMBEDDING_TOLERANCE = 1e-3
#: Frames of the start-up probe (the export traces 2).
PROBE_FRAMES = 3


class OrtVisualRunner:
    """The extractor's trunk in onnxruntime: ``runner(x) -> (K, F)`` float32 numpy.

    Args:
        session: an ``onnxruntime.InferenceSession`` of an
            :func:`~synctva_ros.backends.export.export_visual_encoder` graph.
        name: what serves the trunk (``onnxruntime``).
        path: the ONNX file.

    Shapes:
        ``x`` ``(K, 3, S, S)`` float32 (ImageNet-normalised) -> ``(K, F)``.
    """

    def __init__(self, session: Any, name: str, path: Path) -> None:
        self.session, self.name, self.path = session, name, Path(path)
        self.providers = list(session.get_providers())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return run_session(self.session, ["embeddings"], {"frames": np.ascontiguousarray(x, np.float32)},
                           f"the visual encoder ({self.name})")[0]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def cached_visual_onnx(extractor: Any, cache_dir: str | Path | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """The cached ONNX file of ``extractor``'s trunk (exported now when its key is new or the file fails its content
    check).

    Args:
        extractor: a :class:`~synctva_ros.features.visual.ResNetVisual` (its ``model``, ``image_size`` and
            identity: encoder name, weights sha256, dim).
        cache_dir: ``runtime.cache_dir`` (``None``: the default cache).
        opset: ONNX opset (>= 18).

    Returns:
        ``<cache>/onnx/visual_encoder-<key>.onnx`` (key: module docstring).

    Raises:
        ExportError: export failed; OSError: the cache is not writable.
    """
    ident = extractor.identity()
    size = int(extractor.image_size)
    parts = {"kind": "visual_encoder", "encoder": ident["encoder"], "weights_sha256": ident["weights_sha256"],
             "image_size": size, "dim": int(ident["dim"]), "inputs": ["frames"], "opset": opset,
             "exporter": "torchscript", "torch": torch.__version__, "torchvision": _version("torchvision")}
    return cached_encoder_onnx("visual_encoder", parts,
                               lambda p: export_visual_encoder(extractor.model, p, size, opset), cache_dir)


def probe_inputs(image_size: int, frames: int = PROBE_FRAMES) -> np.ndarray:
    """The start-up probe: ``(frames, 3, S, S)`` float32 standard normal (seed 0), in the range of normalised images."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(frames, 3, int(image_size), int(image_size), generator=g).numpy()


def visual_parity(extractor: Any, runner: Any) -> float:
    """max |runner - torch| / max(1, max |torch|) over the probe's embeddings (``inf``: wrong shape or non-finite).

    The torch reference runs the extractor's own model on its device (its :attr:`runner` is cleared meanwhile).
    """
    x = probe_inputs(extractor.image_size)
    saved, extractor.runner = extractor.runner, None
    try:
        ref = extractor.encode_inputs(x)
    finally:
        extractor.runner = saved
    got = np.asarray(runner(x), np.float32)
    if got.shape != ref.shape or not bool(np.isfinite(got).all()):
        return float("inf")
    return float(np.abs(got - ref).max() / max(1.0, float(np.abs(ref).max())))


def serve_visual_encoder(extractor: Any, runtime: Any) -> str:
    """Let ``runtime``'s backend serve ``extractor``'s trunk; returns what serves it now.

    Args:
        extractor: a :class:`~synctva_ros.features.visual.ResNetVisual` (``None``, or a visual extractor without a
            trunk runner such as the face-expression embeddings: nothing to serve). Its ``runner`` is set
            (onnxruntime) or cleared (torch); its torch model is kept (the fallback).
        runtime: :class:`~synctva_ros.config.RuntimeConfig` (backend, device, threads, quantize, cache_dir).

    Returns:
        ``"torch"`` or ``"onnxruntime"`` (``""`` for no such extractor). Never raises for a backend that cannot
        serve it: the reason is logged, counted and torch serves.
    """
    if extractor is None or not hasattr(extractor, "runner") or not hasattr(extractor, "encode_inputs"):
        return ""
    extractor.runner = None
    if not serves_encoders(runtime):
        return "torch"
    runner = serve_onnx_encoder("visual", f"visual encoder {extractor.encoder}", runtime,
                                lambda cache_dir: cached_visual_onnx(extractor, cache_dir), OrtVisualRunner,
                                lambda r: visual_parity(extractor, r), EMBEDDING_TOLERANCE,
                                quantity="embeddings (relative to the largest)", quantizable=False, logger=log)
    extractor.runner = runner
    return "torch" if runner is None else runner.name
