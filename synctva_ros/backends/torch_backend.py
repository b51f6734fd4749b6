"""PyTorch backend: eager Sync-TVA on CPU or CUDA, optionally fp16/bf16 autocast."""

from __future__ import annotations

import numpy as np
import torch

from synctva_ros.core.batch import Batch
from .base import Backend, BackendUnavailable

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    """Eager PyTorch inference.

    Args:
        model: a loaded ``SyncTVA`` (eval mode is set here).
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
        self.model = model.to(self.device).eval()
        self.tolerance = {"fp32": 1e-6, "bf16": 2e-2, "fp16": 5e-3}[precision]

    @torch.inference_mode()
    def infer(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        b = batch.to(self.device)
        if self.precision == "fp32":
            logits, contrib = self.model.forward_batch(b)
        else:
            dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
            with torch.autocast(device_type=self.device.type, dtype=dtype):
                logits, contrib = self.model.forward_batch(b)
        return logits.float().cpu().numpy(), contrib.float().cpu().numpy()
