"""Inference backends behind one interface (``Backend.infer``), chosen by ``runtime.backend``.

* ``torch``: eager PyTorch (CPU/CUDA, fp32/bf16/fp16 autocast) — :mod:`.torch_backend`; on CUDA with
  ``runtime.cuda_graphs`` the network replayed from CUDA graphs — :mod:`.cuda_graphs`.
* ``onnxruntime``: the exported fusion graph (cached ONNX file) — :mod:`.onnx_backend`; with
  ``runtime.quantize: int8`` its int8 dynamically quantised copy — :mod:`.quantize`.
* ``tensorrt``: a TensorRT engine built from that graph (cached) — :mod:`.tensorrt_backend`.
  The engine is built/loaded in a background thread; until it is ready the backend
  answers with onnxruntime (torch when onnxruntime is missing) and logs the switch
  (:class:`~.switching.SwitchingBackend`). So ``backend.name`` can change once at run time.
* ``triton``: a Triton Inference Server answers the network (settings: the ``triton`` section), the local
  ``triton.fallback`` backend when it is down, slow or wrong — :mod:`.triton_backend`; the server's model
  repository: :mod:`.triton_repository`, a local server: :mod:`.triton_server`. ``backend.name`` says which
  answered the last window.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from .base import MODEL_INPUTS, Backend, BackendUnavailable
from .cuda_graphs import CudaGraphBackend, graphs_wanted
from .export import ExportError, cached_fusion_onnx, fusion_input_names
from .onnx_backend import OnnxRuntimeBackend
from .switching import SwitchingBackend
from .tensorrt_backend import TensorRTBackend, profile_shapes, require_tensorrt
from .torch_backend import TorchBackend
from .triton_backend import TritonBackend
from .triton_repository import fusion_model_spec

__all__ = ["Backend", "BackendUnavailable", "MODEL_INPUTS", "create_backend", "BACKENDS"]

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "tensorrt", "triton")


def _max_nodes(manifest: dict) -> dict[str, int]:
    """Most nodes per modality from the manifest's extractor identities (defaults: 64 / 32 / 8), and of the
    text prefix (the context word pieces: ``context_max_tokens`` + 8 for speaker tags, default 264)."""
    ex = manifest.get("extractors") or {}
    text = (ex.get("text") or {}).get("max_tokens", 64)
    prefix = int((ex.get("text") or {}).get("context_max_tokens") or 256) + 8
    audio_id = ex.get("audio") or {}
    audio = 1 if audio_id.get("level") == "functionals" else audio_id.get("max_nodes", 32)
    visual = (ex.get("visual") or {}).get("max_frames", 8)
    return {"text": int(text), "audio": int(audio), "visual": int(visual), "text_prefix": prefix}


def create_backend(runtime: Any, model: Any, manifest: dict, triton: Any = None) -> Backend:
    """Backend named by ``runtime.backend`` for a loaded model.

    Args:
        runtime: :class:`~synctva_ros.config.RuntimeConfig` (backend, device, precision, cache_dir, threads,
            quantize: onnxruntime only, a warning for the others).
        model: the loaded ``SyncTVA`` (torch backend, and the source of ONNX export).
        manifest: the checkpoint manifest (part of the export/engine cache keys; its extractor
            identities give the TensorRT profile's max node counts).
        triton: the ``triton`` section (:class:`~synctva_ros.config.TritonConfig`) for backend ``triton``
            (default: its defaults).

    Returns:
        The backend; for ``onnxruntime`` that cannot start here (not installed, export or quantisation failed, the
        file does not load) torch fp32, with a warning (``name`` then says ``torch``); for ``torch`` with
        ``runtime.cuda_graphs`` (the default) on a CUDA device in fp32 a :class:`~.cuda_graphs.CudaGraphBackend`
        (eager torch for another precision).

    Raises:
        BackendUnavailable: the backend cannot start; the message says why and names an alternative
            (e.g. "tensorrt not installed ...: use backend onnxruntime or torch").
    """
    name = runtime.backend
    if getattr(runtime, "quantize", "none") not in ("none", "") and name != "onnxruntime":
        log.warning("runtime.quantize=%s applies to backend onnxruntime only; backend %s runs unquantised",
                    runtime.quantize, name)
    if name == "torch":
        if graphs_wanted(runtime):
            try:
                return CudaGraphBackend(model, _max_nodes(manifest), device=runtime.device)
            except BackendUnavailable as exc:  # no CUDA: TorchBackend below says so
                log.warning("runtime.cuda_graphs: %s; eager torch serves", exc)
        return TorchBackend(model, device=runtime.device, precision=runtime.precision)
    if name == "onnxruntime":
        try:
            return OnnxRuntimeBackend.from_model(model, manifest, runtime)
        except BackendUnavailable as exc:  # torch is the fallback (issue 12): same predictions within 1e-4
            log.warning("backend onnxruntime unavailable (%s); serving torch fp32 instead", exc)
            return TorchBackend(model, device=runtime.device, precision="fp32")
    if name == "tensorrt":
        require_tensorrt()  # raises BackendUnavailable with the alternative
        precision = runtime.precision
        try:
            onnx_path = cached_fusion_onnx(model, manifest, cache_dir=runtime.cache_dir or None)
        except ExportError as exc:  # the engine is built from this file: without it there is no TensorRT
            raise BackendUnavailable(f"{exc}; use backend torch") from exc
        shapes = profile_shapes(fusion_input_names(model), model.dims, _max_nodes(manifest),
                                int(model.cfg.context_turns))
        try:
            fallback: Backend = OnnxRuntimeBackend(onnx_path, device=runtime.device, threads=runtime.threads)
        except BackendUnavailable as exc:
            log.warning("onnxruntime unavailable as the TensorRT warm-up fallback (%s); using torch", exc)
            fallback = TorchBackend(model, device=runtime.device, precision="fp32")
        device = runtime.device if str(runtime.device).startswith("cuda") else "cuda"
        return SwitchingBackend(
            fallback, lambda: TensorRTBackend(onnx_path, shapes, precision=precision, device=device,
                                              cache_dir=runtime.cache_dir or None), primary_name="tensorrt")
    if name == "triton":
        if triton is None:
            from synctva_ros.config import TritonConfig  # deferred: only for callers that pass no section

            triton = TritonConfig()
        local = create_backend(dataclasses.replace(runtime, backend=triton.fallback), model, manifest)
        return TritonBackend(triton, fusion_model_spec(model, triton.fusion_model), local)
    raise BackendUnavailable(f"unknown backend '{name}': use one of {', '.join(BACKENDS)}")
