"""Sync-TVA's network and the text extractor's encoder replayed from CUDA graphs (issue 12: "at most 10 ms from window
close on a GPU").

On a GPU the network stage is bound by kernel launches, not arithmetic. Measured on an NVIDIA H200 (torch 2.11,
``scripts/experiments/gpu_stage_profile.py``, the paper_random configuration, 3 modality subsets): eager torch fp32
takes 12.3 ms per window, launching 978 CUDA kernels that keep the GPU busy for 2.0 ms; the same call captured once as
a CUDA graph and replayed takes 2.3 ms, outputs identical (docs/performance.md, "GPU").

How (the PyTorch recipe, ``torch.cuda.graphs``): every window's inputs (:func:`~synctva_ros.backends.export.
batch_to_feeds`) are padded to fixed node counts, the checkpoint's maxima (``text_max_tokens``, ``audio_max_nodes``,
``max_frames``, context word pieces + 8: :func:`~synctva_ros.backends._max_nodes`) with masked nodes, which leave the
outputs unchanged within 1e-5 (:func:`~synctva_ros.backends.export.pad_node_axes`, as for Triton), and copied into
static input tensors; the graph captured for the window's number of subsets (after three warm-up calls on a side
stream) is replayed and its static outputs copied back. One graph per subset count, captured at start for 2 and 3
(what the pipeline asks for), on first use for another.

Eager torch answers, and :attr:`CudaGraphBackend.eager_calls` counts it: batches of more than one utterance
(``synctva evaluate``), windows with more nodes than the maxima, :meth:`CudaGraphBackend.infer` (one subset, the
pipeline's path for windows of a single modality), and every call of a subset count whose capture failed (logged
once, with the reason). fp32 only: autocast inside a captured graph needs its weight-cast cache off, and fp16 was
slower than fp32 on the H200 anyway (22.8 vs 12.3 ms eager).

The text encoder (:class:`CudaGraphTextRunner`, the extractor's ``runner`` as onnxruntime's is) is launch-bound the
same way (6.8 ms eager for 16-66 word pieces of a RoBERTa-base-sized encoder on the H200): its word-piece axis is
padded (attention mask 0) to the next power of two from 16, at most the encoder's longest sequence, and one graph is
captured per (batch, padded length) for batches of up to :data:`MAX_TEXT_BATCH` sequences; the states of the real word
pieces are returned. It starts only when its states on a fixed probe agree with eager torch
(:func:`~synctva_ros.backends.text_encoder.serve_text_encoder`); the graphs of one sequence at every length are
captured then. Measured on a second H200: the text stage alone 9.1 -> 3.8 ms, window close to result (streaming, both
graphs) p50 35.3 -> 14.0 ms.

Both run only where :func:`graphs_wanted`: backend ``torch``, ``runtime.cuda_graphs`` (the default), a CUDA device,
fp32.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping

import numpy as np
import torch

from synctva_ros.core.batch import Batch, ModalityFeatures, UtteranceFeatures, collate
from .base import MODEL_INPUTS, Backend, BackendUnavailable
from .export import batch_to_feeds, fusion_input_names, pad_node_axes
from .torch_backend import TorchBackend

__all__ = ["CudaGraphBackend", "CudaGraphTextRunner", "MAX_TEXT_BATCH", "graphs_wanted"]

log = logging.getLogger(__name__)

#: Warm-up calls on a side stream before a capture (cuBLAS workspaces and lazy initialisation happen there).
WARMUP_CALLS = 3
#: Most sequences of one text-encoder call replayed from a graph (the node encodes one utterance, with its context).
MAX_TEXT_BATCH = 4


def graphs_wanted(runtime: object) -> bool:
    """Whether ``runtime`` asks for CUDA graphs: backend torch, ``cuda_graphs`` true, a CUDA device, precision fp32."""
    return (getattr(runtime, "backend", "") == "torch" and bool(getattr(runtime, "cuda_graphs", False))
            and str(getattr(runtime, "device", "cpu")).startswith("cuda")
            and getattr(runtime, "precision", "") == "fp32")


def _captured(call: Callable[[], Any], device: torch.device) -> tuple[torch.cuda.CUDAGraph, Any]:
    """``call()`` (reading only static tensors) captured as a CUDA graph after :data:`WARMUP_CALLS` calls on a side
    stream (the PyTorch recipe); returns the graph and its static output."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.inference_mode(), torch.cuda.stream(stream):
        for _ in range(WARMUP_CALLS):
            call()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        out = call()
    return graph, out


#: The subsets' rows in the order ``EmotionPipeline.subsets`` gives them: all modalities, text alone, audio alone.
SUBSET_ROWS = np.array([[True, True, True], [True, False, False], [False, True, False]])


def warm_batch(model: torch.nn.Module) -> Batch:
    """A one-utterance batch with one zero node per modality (and the model's context slots), for captures at start.

    Shapes:
        ``{m}`` ``(1, 1, F_m)``, masks and times ``(1, 1)``; context ``(1, K, F_text)`` when ``context_turns`` K > 0.
    """
    dims = model.dims
    one = UtteranceFeatures(*(ModalityFeatures(np.zeros((1, dims[m]), np.float32), np.zeros(1, np.float32))
                              for m in ("text", "audio", "visual")))
    turns = int(model.cfg.context_turns)
    return collate([one], dims, contexts=[[]] if turns else None, context_turns=turns)


class _Graph:
    """One captured call: static inputs ``keep`` ``(S, 3)`` bool and the padded feeds, static outputs."""

    def __init__(self, model: torch.nn.Module, keep: torch.Tensor, feeds: list[torch.Tensor | None],
                 device: torch.device) -> None:
        self.keep = keep.to(device)
        self.inputs = [None if f is None else f.to(device) for f in feeds]
        self.graph, self.outputs = _captured(lambda: model.forward_subsets(self.keep, *self.inputs), device)

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
        try:
            self.warm()
        except Exception as exc:  # noqa: BLE001 - an optimisation must not stop the start: eager serves
            log.warning("CUDA graphs of the network not captured at start (%s); captured on first use instead", exc)
            self._graphs.clear()

    def warm(self, subsets: tuple[int, ...] = (2, 3)) -> None:
        """Capture the graphs for ``subsets`` modality subsets now (construction calls it): the pipeline asks for 3
        (text and audio present) or 2 (one of them with the face expert), so no window waits for a capture. A capture
        that fails is logged here, at start, and its windows run eagerly."""
        feeds = self._padded(warm_batch(self.model))
        for s in subsets:
            if feeds is not None and s not in self._graphs:
                self._graphs[s] = self._capture(SUBSET_ROWS[:s], feeds)

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


class CudaGraphTextRunner:
    """The text extractor's encoder replayed from CUDA graphs: ``runner(enc) -> (B, T, F)`` float32 CPU tensor.

    Args:
        extractor: a :class:`~synctva_ros.features.text.TextEncoder` whose model is on a CUDA device.
        input_names: the tokenizer inputs the encoder takes (``input_ids``, ``attention_mask``[, ``token_type_ids``]).

    Shapes:
        ``enc`` ``(B, T)`` int tensors -> the states of the extractor's layer ``(B, T, F)``, as
        ``TextEncoder.layer_states`` gives them in torch (within its parity check).

    Raises:
        BackendUnavailable: the extractor's model is not on a CUDA device.
    """

    name = "torch-cudagraph"

    def __init__(self, extractor: Any, input_names: list[str]) -> None:
        self.device = torch.device(getattr(extractor, "device", "cpu"))
        if self.device.type != "cuda":
            raise BackendUnavailable(f"the text encoder runs on {self.device}, not CUDA: no CUDA graphs for it")
        self.extractor = extractor
        self.input_names = list(input_names)
        self.max_length = int(getattr(extractor, "_limit", 512))
        self.pad_id = int(getattr(getattr(extractor, "tokenizer", None), "pad_token_id", None) or 0)
        self.graph_calls = 0
        self.eager_calls = 0
        #: (batch, padded length) -> (graph, static inputs, static output); ``None``: its capture failed, eager
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]
                           | None] = {}
        self._lock = threading.Lock()

    def lengths(self) -> list[int]:
        """The padded word-piece lengths a graph is captured for: powers of two from 16, and the longest sequence."""
        out, n = [], 16
        while n < self.max_length:
            out.append(n)
            n *= 2
        return out + [self.max_length]

    def warm(self, batch: int = 1) -> None:
        """Capture the graphs of ``batch`` sequences at every length of :meth:`lengths` now (at start), so that no
        window waits for a capture."""
        counts = self.graph_calls, self.eager_calls
        for n in self.lengths():
            ids = torch.full((batch, n), self.pad_id, dtype=torch.long)
            mask = torch.zeros((batch, n), dtype=torch.long)
            mask[:, 0] = 1
            self({"input_ids": ids, "attention_mask": mask})
        self.graph_calls, self.eager_calls = counts  # warming is not serving

    def padded_length(self, t: int) -> int:
        """Sequence length of the graph that serves ``t`` tokens: the next power of two, at least 16, at most
        ``max_length``."""
        return min(max(16, 1 << max(0, int(t) - 1).bit_length()), self.max_length)

    def __call__(self, enc: Mapping[str, torch.Tensor]) -> torch.Tensor:
        ids = enc["input_ids"]
        b, t = int(ids.shape[0]), int(ids.shape[1])
        feeds = {n: (enc[n] if enc.get(n) is not None else torch.zeros_like(ids)).to(torch.long)
                 for n in self.input_names}
        padded_t = self.padded_length(t)
        key = (b, padded_t)
        if b > MAX_TEXT_BATCH or t > self.max_length or t == 0 or self._graphs.get(key, ()) is None:
            self.eager_calls += 1
            with torch.inference_mode():
                return self.extractor.torch_states(**{k: v.to(self.device) for k, v in feeds.items()}).float().cpu()
        with self._lock:
            if key not in self._graphs:
                static = {n: torch.zeros(b, padded_t, dtype=torch.long, device=self.device) for n in self.input_names}
                static["input_ids"].fill_(self.pad_id)
                static["attention_mask"][:, 0] = 1  # a valid warm-up input; every replay overwrites it
                try:
                    graph, out = _captured(lambda: self.extractor.torch_states(**static), self.device)
                except RuntimeError as exc:  # this shape runs eagerly from now on; the window is not lost
                    log.warning("CUDA graph capture of text encoder %s for %d x %d word pieces failed (%s); eager "
                                "torch serves that shape", getattr(self.extractor, "name", "?"), b, padded_t, exc)
                    self._graphs[key] = None
                    return self(enc)
                self._graphs[key] = (graph, static, out)
                log.info("CUDA graph of text encoder %s captured for %d x %d word pieces",
                         getattr(self.extractor, "name", "?"), b, padded_t)
            graph, static, out = self._graphs[key]
            for n, v in feeds.items():
                static[n].fill_(self.pad_id if n == "input_ids" else 0)  # padded word pieces: masked
                static[n][:, :t].copy_(v)
            graph.replay()
            self.graph_calls += 1
            return out[:, :t].float().cpu()
