"""PyTorch backend: eager Sync-TVA on CPU or CUDA, optionally fp16/bf16 autocast."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch

from synctva_ros.core.batch import Batch
from .base import Backend, BackendUnavailable

__all__ = ["TorchBackend", "model_on"]


def model_on(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` itself when every parameter and buffer is already on ``device``, else a deep copy moved there.

    ``nn.Module.to`` moves a module in place, so a backend that moved the model it was given would pull it
    from under another backend (or the pipeline's feature extractors) that shares it on another device; a
    backend never does (issue 10): the second device gets its own copy.

    Args:
        model: the loaded model (not changed).
        device: the backend's torch device (``cuda`` means the current CUDA device).

    Returns:
        A module whose tensors are all on ``device``.
    """
    want = torch.device(device)
    if want.type == "cuda" and want.index is None and torch.cuda.is_available():
        want = torch.device("cuda", torch.cuda.current_device())
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device == want for t in tensors):
        return model
    return copy.deepcopy(model).to(want)


class TorchBackend(Backend):
    """Eager PyTorch inference.

    Args:
        model: a loaded ``SyncTVA``; used as is when it is already on ``device`` (eval mode is set), else a
            copy is moved there (:func:`model_on`: the model given is never moved).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"fp32"``, ``"fp16"`` (CUDA only) or ``"bf16"`` (autocast).

    Raises:
        BackendUnavailable: CUDA requested but not available, or fp16 on CPU.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str = "cpu", precision: str = "fp32") -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"torch device '{device}' requested but CUDA is not available; "
                                     "use runtime.device:=cpu (or backend onnxruntime)")
        if precision == "fp16" and not device.startswith("cuda"):
            raise BackendUnavailable("fp16 on CPU is not supported by the torch backend; use precision bf16 or fp32")
        self.device = torch.device(device)
        self.precision = precision
        self.model = model_on(model, self.device).eval()
        self.tolerance = {"fp32": 1e-6, "bf16": 2e-2, "fp16": 5e-3}[precision]

    @torch.inference_mode()
    def infer(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        b = batch.to(self.device)
        with self._autocast():
            logits, contrib = self.model.forward_batch(b)
        return logits.float().cpu().numpy(), contrib.float().cpu().numpy()

    @torch.inference_mode()
    def infer_subsets(self, batch: Batch, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All subsets in one pass (``SyncTVA.forward_subsets``): logits ``(B, S, C)``, contributions ``(B, S, 3)``."""
        b = batch.to(self.device)
        k = torch.as_tensor(np.asarray(keep, bool).reshape(-1, 3), device=self.device)
        with self._autocast():
            logits, contrib = self.model.forward_subsets(
                k, b.text, b.text_mask, b.text_time, b.audio, b.audio_mask, b.audio_time, b.visual, b.visual_mask,
                b.visual_time, b.context, b.context_mask, b.text_prefix, b.text_prefix_mask)
        return logits.float().cpu().numpy(), contrib.float().cpu().numpy()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)
