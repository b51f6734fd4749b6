"""ONNX Runtime backend: the exported Sync-TVA fusion graph in ``onnxruntime``.

Execution providers: ``CPUExecutionProvider``; with ``device`` ``cuda[:N]`` the
``CUDAExecutionProvider`` is put first when this onnxruntime build has it, otherwise a
warning is logged and the CPU provider is used. Graph optimisation level: all
(``ORT_ENABLE_ALL``). Threads: ``runtime.threads`` intra-op threads (0 = onnxruntime's
default). Runs in fp32 whatever ``runtime.precision`` says (a warning is logged for
fp16/bf16). Tolerance: 1e-4 max absolute difference of probabilities against torch fp32
(measured differences are about 1e-7, test/backends/test_export.py).

:meth:`OnnxRuntimeBackend.from_model` serves the *subsets* graph (:func:`~synctva_ros.backends.export.export_fusion`
with ``subsets=True``): ``infer`` runs it with the one all-modalities subset, ``infer_subsets`` answers every
subset in one session run (the text layers computed once). A plain fusion graph (the TensorRT backend's
warm-up fallback) is served too; its ``infer_subsets`` then runs once per subset.

``runtime.quantize: int8`` serves the int8 dynamically quantised copy of that graph
(:mod:`~synctva_ros.backends.quantize`); tolerance then :data:`~synctva_ros.backends.quantize.INT8_TOLERANCE`,
``quantize`` says ``"int8"`` and :attr:`OnnxRuntimeBackend.name` is ``"onnxruntime-int8"`` (what
``EmotionState.backend``, the logs and diagnostics then say).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from synctva_ros.core.batch import Batch
from .base import Backend, BackendUnavailable
from .export import SUBSETS_INPUT, ExportError, batch_to_feeds, cached_fusion_onnx
from .quantize import INT8_TOLERANCE, QUANTIZE_MODES, cached_quantized_onnx

__all__ = ["OnnxRuntimeBackend", "ort_session", "ort_providers"]

log = logging.getLogger(__name__)


def ort_providers(device: str = "cpu") -> list[Any]:
    """Execution providers for ``device``: CUDA first when asked for and available, then CPU.

    Raises:
        BackendUnavailable: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort  # deferred: optional dependency, ~0.5 s to import; missing -> BackendUnavailable
    except ImportError as exc:
        raise BackendUnavailable("onnxruntime not installed: pip install onnxruntime, or use backend torch") from exc
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in ort.get_available_providers():
            idx = int(device.split(":")[1]) if ":" in device else 0
            return [("CUDAExecutionProvider", {"device_id": idx}), "CPUExecutionProvider"]
        log.warning("runtime.device=%s but this onnxruntime has no CUDAExecutionProvider (available: %s); "
                    "running on the CPU", device, ", ".join(ort.get_available_providers()))
    return ["CPUExecutionProvider"]


def ort_session(path: str | Path, device: str = "cpu", threads: int = 0) -> Any:
    """An ``onnxruntime.InferenceSession`` with all graph optimisations, ``threads`` intra-op threads.

    Raises:
        BackendUnavailable: onnxruntime missing, or the file cannot be loaded (the message says why).
    """
    providers = ort_providers(device)
    import onnxruntime as ort  # deferred: optional dependency (ort_providers has checked it imports)

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception classes
        raise BackendUnavailable(f"onnxruntime cannot load {path}: {exc}; use backend torch") from exc


class OnnxRuntimeBackend(Backend):
    """Fusion model in onnxruntime.

    Args:
        onnx_path: exported fusion graph (see :func:`~synctva_ros.backends.export.cached_fusion_onnx`).
        device: ``"cpu"`` or ``"cuda[:N]"`` (falls back to CPU with a warning).
        threads: intra-op threads (0 = default).
        precision: only ``"fp32"`` runs as asked; others log a warning and run fp32.
        quantize: ``"none"`` or ``"int8"``: what ``onnx_path`` holds (sets :attr:`tolerance`; the file is
            not changed here, see :meth:`from_model`).

    Shapes:
        ``infer(batch)`` -> logits ``(B, C)`` float32, contributions ``(B, 3)`` float32;
        ``infer_subsets(batch, keep (S, 3))`` -> ``(B, S, C)``, ``(B, S, 3)``.

    Raises:
        BackendUnavailable: onnxruntime missing or the file does not load.
        ValueError: an unknown ``quantize``.
    """

    name = "onnxruntime"
    tolerance = 1e-4

    def __init__(self, onnx_path: str | Path, device: str = "cpu", threads: int = 0, precision: str = "fp32",
                 quantize: str = "none") -> None:
        if quantize not in QUANTIZE_MODES:
            raise ValueError(f"unknown runtime.quantize '{quantize}' (known: {', '.join(QUANTIZE_MODES)})")
        if precision != "fp32":
            log.warning("backend onnxruntime runs in fp32%s; runtime.precision=%s is ignored",
                        " activations (int8 weights)" if quantize == "int8" else "", precision)
        self.path = Path(onnx_path)
        self.quantize = quantize
        self.tolerance = INT8_TOLERANCE if quantize == "int8" else type(self).tolerance
        #: ``onnxruntime``, or ``onnxruntime-int8`` when the file is the int8 quantised graph.
        self.name = "onnxruntime-int8" if quantize == "int8" else type(self).name
        self.session = ort_session(self.path, device, threads)
        self.input_names: list[str] = [i.name for i in self.session.get_inputs()]
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        self.providers: list[str] = list(self.session.get_providers())
        #: Whether the graph is the subsets graph (first input ``subsets``).
        self.subsets = SUBSETS_INPUT in self.input_names

    @classmethod
    def from_model(cls, model: Any, manifest: Mapping[str, Any] | None, runtime: Any) -> "OnnxRuntimeBackend":
        """Export (or reuse the cached export of) ``model`` and open it.

        Args:
            model: a ``SyncTVA``.
            manifest: its checkpoint manifest (part of the cache key).
            runtime: :class:`~synctva_ros.config.RuntimeConfig` (cache_dir, device, threads, precision,
                quantize).

        Raises:
            BackendUnavailable: onnxruntime missing, export or quantisation failed, or the file does not load.
        """
        ort_providers("cpu")  # fail early, with the install hint, when onnxruntime is missing
        quantize = str(getattr(runtime, "quantize", "none") or "none")
        try:
            path = cached_fusion_onnx(model, manifest, cache_dir=runtime.cache_dir or None, subsets=True)
        except ExportError as exc:
            raise BackendUnavailable(f"{exc}; use backend torch") from exc
        if quantize == "int8":
            path = cached_quantized_onnx(path, runtime.cache_dir or None)
        return cls(path, device=runtime.device, threads=runtime.threads, precision=runtime.precision,
                   quantize=quantize)

    def run_feeds(self, feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        """Run the session on ``{input name: array}`` (only the graph's inputs are passed)."""
        return self.session.run(self.output_names, {k: feeds[k] for k in self.input_names})

    def infer(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(B, C)`` and contributions ``(B, 3)``, float32: the subsets graph's all-modalities subset
        (:meth:`Backend.infer <synctva_ros.backends.base.Backend.infer>`), else one run of the plain graph.

        Raises:
            ValueError: the graph needs an input the batch does not have.
        """
        if self.subsets:
            return super().infer(batch)
        out = self.run_feeds(batch_to_feeds(batch, self.input_names))
        return np.asarray(out[0], np.float32), np.asarray(out[1], np.float32)

    def infer_subsets(self, batch: Batch, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(B, S, C)`` and contributions ``(B, S, 3)``, float32, for the subsets ``keep`` ``(S, 3)`` bool:
        one session run with the subsets graph, else one per subset (:class:`~synctva_ros.backends.base.Backend`)."""
        if not self.subsets:
            return super().infer_subsets(batch, keep)
        feeds = batch_to_feeds(batch, [n for n in self.input_names if n != SUBSETS_INPUT])
        feeds[SUBSETS_INPUT] = np.ascontiguousarray(np.asarray(keep, bool).reshape(-1, 3))
        out = self.run_feeds(feeds)
        return np.asarray(out[0], np.float32), np.asarray(out[1], np.float32)
