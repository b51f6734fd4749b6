"""A feature extractor's frozen encoder served by onnxruntime: the steps the text and visual encoders share (issue 12).

:mod:`~synctva_ros.backends.text_encoder` (the text extractor's Hugging Face encoder) and
:mod:`~synctva_ros.backends.visual_encoder` (the visual extractor's ResNet trunk) serve their encoder the same way,
here:

1. ``runtime.backend`` ``onnxruntime`` or ``tensorrt`` (:data:`ENCODER_BACKENDS`; with ``tensorrt`` the encoders
   run in onnxruntime on ``runtime.device``, CUDA execution provider when this onnxruntime has it, while the
   fusion network gets its TensorRT engine); any other backend: torch.
2. The encoder's ONNX file from the cache (:func:`cached_encoder_onnx`: ``<cache>/onnx/<stem>-<key>.onnx``, key
   from the caller's parts, content-checked on every reuse and rebuilt when it differs,
   :mod:`~synctva_ros.backends.engine_cache`), exported on the first start.
3. ``runtime.quantize: int8`` (backend onnxruntime only): the file's int8 dynamically quantised copy
   (:mod:`~synctva_ros.backends.quantize`), for encoders whose weights are in ``MatMul``/``Gemm`` nodes.
4. An onnxruntime session (``runtime.threads`` intra-op threads, 0: onnxruntime's default) wrapped in the
   caller's runner.
5. Parity at start: the caller's probe compares the runner with torch on a fixed input; a difference above the
   caller's tolerance (fp32) or a non-finite one (int8 too) keeps torch.

Fallback: export, quantisation, session or probe failures (onnxruntime missing, an encoder the tracer cannot take,
a file onnxruntime cannot load) and parity failures are logged as a warning, counted per encoder
(:func:`encoder_fallbacks`) and torch keeps serving; nothing raises.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import numpy as np

from .base import BackendUnavailable
from .engine_cache import CachedArtifact, cache_root, cached_build
from .export import ExportError
from .onnx_backend import ort_session
from .quantize import cached_quantized_onnx

__all__ = ["ENCODER_BACKENDS", "serves_encoders", "cached_encoder_onnx", "serve_onnx_encoder", "encoder_fallbacks",
           "run_session"]

log = logging.getLogger(__name__)

#: ``runtime.backend`` values whose encoders run in onnxruntime.
ENCODER_BACKENDS = ("onnxruntime", "tensorrt")
R = TypeVar("R")

_LOCK = threading.Lock()
_FALLBACKS: dict[str, int] = {}


def encoder_fallbacks() -> dict[str, int]:
    """``{encoder kind ("text", "visual"): times it stayed on torch although onnxruntime was asked for}`` in this
    process (export, onnxruntime or parity failures; not an encoder that torch serves by design)."""
    with _LOCK:
        return dict(_FALLBACKS)


def serves_encoders(runtime: Any) -> bool:
    """Whether ``runtime.backend`` serves the extractors' encoders in onnxruntime (:data:`ENCODER_BACKENDS`)."""
    return str(getattr(runtime, "backend", "torch")) in ENCODER_BACKENDS


def cached_encoder_onnx(stem: str, parts: Mapping[str, Any], export: Callable[[Path], Any],
                        cache_dir: str | Path | None = None) -> Path:
    """The cached ONNX file of an encoder, exported now when its key is new or the cached file fails its content check.

    Args:
        stem: file-name stem (``text_encoder``, ``visual_encoder``).
        parts: the key parts (everything that determines the graph: weights identity, inputs, opset, versions).
        export: ``export(path)`` writes the ONNX file to ``path``.
        cache_dir: ``runtime.cache_dir`` (``None``/empty: the default cache).

    Returns:
        ``<cache>/onnx/<stem>-<key16>.onnx``.

    Raises:
        Whatever ``export`` raises (:class:`~synctva_ros.backends.export.ExportError`); OSError: the cache is not
        writable.
    """
    art = CachedArtifact(cache_root(cache_dir), "onnx", stem, "onnx", parts)
    path, built = cached_build(art, export)
    if built:
        log.info("exported %s to %s", stem, path.name)
    return path


def run_session(session: Any, outputs: list[str], feeds: Mapping[str, np.ndarray], what: str) -> list[np.ndarray]:
    """``session.run(outputs, feeds)`` for a runner of an extractor's stage.

    onnxruntime raises its own exception classes (``Fail``, ``InvalidArgument``, ``RuntimeException``; none derives
    from ``RuntimeError``): they are raised again as ``RuntimeError`` naming ``what`` and the input shapes, so the
    pipeline treats that modality as absent for the window (logged) instead of losing the whole window.

    Raises:
        RuntimeError: the session failed.
    """
    try:
        return session.run(outputs, dict(feeds))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's exception classes share no base but Exception
        shapes = {k: tuple(np.shape(v)) for k, v in feeds.items()}
        raise RuntimeError(f"onnxruntime failed on {what} (inputs {shapes}): {type(exc).__name__}: {exc}") from exc


def _fallback(kind: str, logger: logging.Logger, msg: str, *args: Any) -> None:
    with _LOCK:
        _FALLBACKS[kind] = _FALLBACKS.get(kind, 0) + 1
    logger.warning(msg, *args)


def serve_onnx_encoder(kind: str, what: str, runtime: Any, onnx_file: Callable[[str | None], Path],
                       make_runner: Callable[[Any, str, Path], R], parity: Callable[[R], float], tolerance: float,
                       quantity: str = "outputs", quantizable: bool = True,
                       logger: logging.Logger | None = None) -> R | None:
    """An onnxruntime runner of an extractor's encoder, or ``None`` when torch keeps serving it (steps: module
    docstring).

    Args:
        kind: the encoder's kind for :func:`encoder_fallbacks` (``text``, ``visual``).
        what: how the logs name it (``text encoder all-mpnet-base-v2``).
        runtime: :class:`~synctva_ros.config.RuntimeConfig` (backend, device, threads, quantize, cache_dir); the
            caller has checked :func:`serves_encoders`.
        onnx_file: ``onnx_file(cache_dir) -> Path`` of the fp32 graph (usually :func:`cached_encoder_onnx`).
        make_runner: ``make_runner(session, name, path)``; ``name`` is ``onnxruntime`` or ``onnxruntime-int8``.
        parity: ``parity(runner)`` -> max |runner - torch| on the caller's fixed probe (``inf`` for a wrong shape).
        tolerance: largest accepted ``parity`` in fp32 (int8: finite only).
        quantity: what ``parity`` compares, for the log (``states``, ``embeddings``).
        quantizable: False for graphs without ``MatMul``/``Gemm`` weights (``runtime.quantize: int8`` then serves
            the fp32 graph, logged).
        logger: where the outcome is logged (default: this module's).

    Returns:
        The runner, or ``None`` (the reason logged as a warning and counted). Never raises for export, onnxruntime or
        parity failures.
    """
    logger = logger or log
    onnxruntime = str(getattr(runtime, "backend", "torch")) == "onnxruntime"
    quantize = str(getattr(runtime, "quantize", "none") or "none") if onnxruntime else "none"
    if quantize == "int8" and not quantizable:
        logger.info("%s has no MatMul/Gemm weights for runtime.quantize int8: it runs its fp32 graph", what)
        quantize = "none"
    cache_dir = getattr(runtime, "cache_dir", "") or None
    try:
        path = onnx_file(cache_dir)
        if quantize == "int8":
            path = cached_quantized_onnx(path, cache_dir)
        session = ort_session(path, str(getattr(runtime, "device", "cpu")), int(getattr(runtime, "threads", 0)))
    except (ExportError, BackendUnavailable, OSError) as exc:
        _fallback(kind, logger, "%s stays on torch: %s", what, exc)
        return None
    runner = make_runner(session, "onnxruntime-int8" if quantize == "int8" else "onnxruntime", path)
    try:
        diff = float(parity(runner))
    except Exception as exc:  # onnxruntime raises its own exception classes at run time (e.g. out of memory)
        _fallback(kind, logger, "%s stays on torch: its onnxruntime session failed on the start-up probe: %s", what,
                  exc)
        return None
    if not np.isfinite(diff) or (quantize != "int8" and diff > tolerance):
        _fallback(kind, logger, "%s stays on torch: onnxruntime %s differ from torch by %.3g (> %.0e)", what,
                  quantity, diff, tolerance)
        return None
    logger.info("%s served by %s (%s; its %s differ from torch by %.2g on the start-up probe)", what,
                getattr(runner, "name", ""), ", ".join(session.get_providers()), quantity, diff)
    return runner
