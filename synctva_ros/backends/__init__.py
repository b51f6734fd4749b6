"""Inference backends behind one interface (``Backend.infer``), chosen by ``runtime.backend``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Backend, BackendUnavailable

__all__ = ["Backend", "BackendUnavailable", "create_backend"]


def create_backend(runtime: Any, model: Any, manifest: dict, checkpoint_dir: Path) -> Backend:
    """Backend named by ``runtime.backend`` for a loaded model.

    Args:
        runtime: :class:`~synctva_ros.config.RuntimeConfig`.
        model: the loaded ``SyncTVA`` (torch backend, and the source of ONNX export).
        manifest: the checkpoint manifest (model hash for caches).
        checkpoint_dir: checkpoint directory.

    Raises:
        BackendUnavailable: the backend cannot start; the message names an alternative.
    """
    if runtime.backend == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(model, device=runtime.device, precision=runtime.precision)
    raise BackendUnavailable(f"backend '{runtime.backend}' is not available in this build; use 'torch'")
