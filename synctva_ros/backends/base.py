"""The inference-backend interface: runs the Sync-TVA fusion model on a padded batch.

Every backend (torch, onnxruntime, tensorrt) takes a :class:`~synctva_ros.core.batch.Batch`
and returns logits ``(B, C)`` and modality contributions ``(B, 3)`` as numpy arrays.
A backend must not change predictions beyond the tolerance it states in ``tolerance``
(max absolute difference of probabilities against torch fp32).
"""

from __future__ import annotations

import abc

import numpy as np

from synctva_ros.core.batch import Batch

__all__ = ["Backend", "BackendUnavailable", "MODEL_INPUTS"]

#: Model input names, in ``SyncTVA.forward`` order (also the ONNX graph's input names).
MODEL_INPUTS: tuple[str, ...] = (
    "text", "text_mask", "text_time", "audio", "audio_mask", "audio_time",
    "visual", "visual_mask", "visual_time", "context", "context_mask", "text_prefix", "text_prefix_mask",
)


class BackendUnavailable(RuntimeError):
    """A backend cannot start here; the message says why and which backend to use instead."""


class Backend(abc.ABC):
    """Runs the fusion model. Subclasses set ``name`` and ``tolerance``."""

    name: str = ""
    tolerance: float = 0.0

    @abc.abstractmethod
    def infer(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(B, C)`` float32 and contributions ``(B, 3)`` float32 for a batch."""
