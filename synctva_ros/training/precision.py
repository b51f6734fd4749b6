"""Mixed-precision training steps (``training.precision``): fp32, bf16 autocast, or fp16 autocast with loss scaling.

On a CUDA GPU, autocast runs the matrix products of the fused model and the fine-tuned encoder layers in
half precision while the weights, the optimizer state and the loss stay fp32 (PyTorch automatic mixed
precision, ``torch.autocast`` + ``torch.amp.GradScaler``; Micikevicius et al. 2018). fp16 needs the loss
scaler (its gradients underflow otherwise) and a CUDA device; bf16 has fp32's range and needs no scaler,
and also runs on CPUs (slower than fp32 on CPUs without bf16 units, so the default stays fp32).
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch

__all__ = ["PRECISIONS", "TrainingPrecision"]

#: ``training.precision`` values.
PRECISIONS = ("fp32", "bf16", "fp16")


class TrainingPrecision:
    """The forward context and the backward/step of one training step at a precision.

    Args:
        precision: ``fp32``, ``bf16`` or ``fp16``.
        device: the training device (``cpu``, ``cuda``, ``cuda:N``).

    Raises:
        ValueError: an unknown precision, or ``fp16`` on a device that is not CUDA.
    """

    def __init__(self, precision: str, device: str | torch.device) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"training precision {precision!r} is not one of {list(PRECISIONS)}")
        self.device = torch.device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError(f"training.precision fp16 needs a CUDA device (training.device is {self.device}); "
                             f"use bf16 or fp32")
        self.precision = precision
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Context for the forward pass and the loss (a no-op at fp32)."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            yield

    def step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter],
             grad_clip: float) -> None:
        """``loss.backward()``, gradient clipping to ``grad_clip`` (0 = off) on unscaled gradients, ``opt.step()``
        (skipped by the fp16 scaler when a gradient is inf/NaN)."""
        opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(list(params), grad_clip)
            opt.step()
            return
        self.scaler.scale(loss).backward()
        if grad_clip:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(list(params), grad_clip)
        self.scaler.step(opt)
        self.scaler.update()
