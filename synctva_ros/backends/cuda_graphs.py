"""Sync-TVA's network replayed from CUDA graphs (issue 12: "at most 10 ms from window close on a GPU").

On a GPU the network stage is bound by kernel launches, not arithmetic. Measured on an NVIDIA H200 (torch 2.11,
``scripts/experiments/gpu_stage_profile.py``, the paper_random configuration, 3 modality subsets): eager torch fp32
takes 12.3 ms per window, launching 978 CUDA kernels that keep the GPU busy for 2.0 ms; the same call captured once as
a CUDA graph and replayed takes 2.3 ms, outputs identical (docs/performance.md, "GPU").

How (the PyTorch recipe, ``torch.cuda.graphs``): every window's inputs (:func:`~synctva_ros.backends.export.
batch_to_feeds`) are padded to fixed node counts, the checkpoint's maxima (``text_max_tokens``, ``audio_max_nodes``,
``max_frames``, context word pieces + 8: :func:`~synctva_ros.backends._max_nodes`) with masked nodes, which leave the
outputs unchanged within 1e-6 (:func:`~synctva_ros.backends.export.pad_node_axes`, as for Triton), and copied into
static input tensors; the graph captured for the window's number of subsets (after three warm-up calls on a side
stream) is replayed and its static outputs copied back. One graph per subset count (1 to 3), captured on first use.

Eager torch answers, and :attr:`CudaGraphBackend.eager_calls` counts it: batches of more than one utterance
(``synctva evaluate``), windows with more nodes than the maxima, :meth:`CudaGraphBackend.infer` (one subset, the
pipeline's path for windows of a single modality), and every call of a subset count whose capture failed (logged
once, with the reason). fp32 only: autocast inside a captured graph needs its weight-cast cache off, and fp16 was
slower than fp32 on the H200 anyway (22.8 vs 12.3 ms eager).
"""

from __future__ import annotations

import logging
import threading
from typing import Mapping

import numpy as np
import torch

from synctva_ros.core.batch import Batch
from .base import MODEL_INPUTS, Backend, BackendUnavailable
from .export import batch_to_feeds, fusion_input_names, pad_node_axes
from .torch_backend import TorchBackend

__all__ = ["CudaGraphBackend"]

log = logging.getLogger(__name__)

#: Warm-up calls on a side stream before a capture (cuBLAS workspaces and lazy initialisation happen there).
WARMUP_CALLS = 3


class _Graph:
    """One captured call: static inputs ``keep`` ``(S, 3)`` bool and the padded feeds, static outputs."""

    def __init__(self, model: torch.nn.Module, keep: torch.Tensor, feeds: list[torch.Tensor | None],
                 device: torch.device) -> None:
        self.keep = keep.to(device)
        self.inputs = [None if f is None else f.to(device) for f in feeds]
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(WARMUP_CALLS):
                model.forward_subsets(self.keep, *self.inputs)
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.outputs = model.forward_subsets(self.keep, *self.inputs)

    def replay(self, keep: torch.Tensor, feeds: list[torch.Tensor | None]) -> tuple[np.ndarray, np.ndarray]:
        self.keep.copy_(keep)
        for static, f in zip(self.inputs, feeds):
            if static is not None and f is not None:
                static.copy_(f)
        self.graph.replay()
        logits, contrib = self.outputs
        return logits.float().cpu().numpy(), contrib.float().cpu().numpy()


class CudaGraphBackend(Backend):
    """The network's subsets pass (``SyncTVA.forward_subsets``) replayed from CUDA graphs; eager torch otherwise.

    Args:
        model: a loaded ``SyncTVA`` (copied to ``device`` when it is elsewhere; never moved).
        max_nodes: most nodes per input group: ``"text"``, ``"audio"``, ``"visual"`` and ``"text_prefix"``
            (:func:`~synctva_ros.backends._max_nodes` of the checkpoint's manifest).
        device: ``"cuda"`` or ``"cuda:N"``.
        precision: ``"fp32"`` only.

    Raises:
        BackendUnavailable: no CUDA device, a CPU device, or another precision.
    """

    name = "torch-cudagraph"

    def __init__(self, model: torch.nn.Module, max_nodes: Mapping[str, int], device: str = "cuda",
                 precision: str = "fp32") -> None:
        if not str(device).startswith("cuda"):
            raise BackendUnavailable(f"CUDA graphs need a CUDA device, not '{device}'; set runtime.cuda_graphs false")
        if precision != "fp32":
            raise BackendUnavailable(f"CUDA graphs run fp32 only (asked: {precision}); set runtime.precision fp32 or "
                                     "runtime.cuda_graphs false")
        self.eager = TorchBackend(model, device=device, precision="fp32")  # raises without CUDA
        self.device = self.eager.device
        self.model = self.eager.model
        self.tolerance = self.eager.tolerance
        self.max_nodes = {k: int(v) for k, v in max_nodes.items()}
        self.names = fusion_input_names(self.model)
        self.eager_calls = 0
        self.graph_calls = 0
        self._graphs: dict[int, _Graph | None] = {}
        self._lock = threading.Lock()

    def infer(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass (``SyncTVA.forward_batch``), eager: logits ``(B, C)``, contributions ``(B, 3)``."""
        self.eager_calls += 1
        return self.eager.infer(batch)

    def infer_subsets(self, batch: Batch, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All subsets in one pass: logits ``(B, S, C)``, contributions ``(B, S, 3)``; replayed when it fits."""
        keep = np.asarray(keep, bool).reshape(-1, 3)
        feeds = self._padded(batch)
        if feeds is None:
            self.eager_calls += 1
            return self.eager.infer_subsets(batch, keep)
        with self._lock:
            s = int(keep.shape[0])
            if s not in self._graphs:
                self._graphs[s] = self._capture(keep, feeds)
            graph = self._graphs[s]
            if graph is None:
                self.eager_calls += 1
                return self.eager.infer_subsets(batch, keep)
            self.graph_calls += 1
            return graph.replay(torch.from_numpy(keep), feeds)

    def _padded(self, batch: Batch) -> list[torch.Tensor | None] | None:
        """The window's feeds padded to :attr:`max_nodes`, in ``forward_subsets``' order; ``None`` when it does not
        fit (more than one utterance, or more nodes than a maximum)."""
        if batch.text.shape[0] != 1:
            return None
        feeds = batch_to_feeds(batch, self.names)
        for head, n in self.max_nodes.items():
            if head in feeds and feeds[head].shape[1] > n:
                return None
        feeds = pad_node_axes(feeds, self.max_nodes)
        return [torch.from_numpy(feeds[n]) if n in feeds else None for n in MODEL_INPUTS]

    def _capture(self, keep: np.ndarray, feeds: list[torch.Tensor | None]) -> _Graph | None:
        try:
            graph = _Graph(self.model, torch.from_numpy(keep), feeds, self.device)
        except RuntimeError as exc:  # e.g. an operation that synchronises with the host cannot be captured
            log.warning("CUDA graph capture of the network (%d subsets) failed, eager torch serves those windows: %s",
                        keep.shape[0], exc)
            return None
        log.info("CUDA graph of the network captured for %d subset(s) on %s", keep.shape[0], self.device)
        return graph
