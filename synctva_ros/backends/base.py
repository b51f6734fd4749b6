"""The inference-backend interface: runs the Sync-TVA fusion model on a padded batch.

Every backend (torch, onnxruntime, tensorrt) takes a :class:`~synctva_ros.core.batch.Batch`
and returns logits ``(B, C)`` and modality contributions ``(B, 3)`` as numpy arrays.
A backend must not change predictions beyond the tolerance it states in ``tolerance``
(max absolute difference of probabilities against torch fp32).

``infer_subsets`` answers the same batch for several modality subsets at once (the pipeline's
per-modality distributions: all present modalities, text alone, audio alone). The default runs
``infer`` once per subset on the batch with the left-out modalities masked (:func:`keep_modalities`);
the torch and onnxruntime backends run all subsets in one pass with the text layers computed once
(``SyncTVA.forward_subsets``). Conversely the default ``infer`` is the all-modalities subset of
``infer_subsets`` (the onnxruntime backend on its subsets graph, the Triton backend); a backend overrides
at least one of the two.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from synctva_ros.core.batch import Batch

__all__ = ["Backend", "BackendUnavailable", "MODEL_INPUTS", "keep_modalities"]

#: Model input names, in ``SyncTVA.forward`` order (also the ONNX graph's input names).
MODEL_INPUTS: tuple[str, ...] = (
    "text", "text_mask", "text_time", "audio", "audio_mask", "audio_time",
    "visual", "visual_mask", "visual_time", "context", "context_mask", "text_prefix", "text_prefix_mask",
)


def keep_modalities(batch: Batch, keep: np.ndarray) -> Batch:
    """A copy of ``batch`` whose modalities left out by ``keep`` are absent (their masks all False).

    Args:
        batch: the padded batch (not changed).
        keep: ``(3,)`` bool in :data:`~synctva_ros.core.modalities.MODALITIES` order.
    """
    changes = {}
    for m, k in zip(("text", "audio", "visual"), np.asarray(keep, bool).reshape(-1)):
        if not k:
            changes[f"{m}_mask"] = torch.zeros_like(getattr(batch, f"{m}_mask"), dtype=torch.bool)
    return dataclasses.replace(batch, **changes)


class BackendUnavailable(RuntimeError):
    """A backend cannot start here; the message says why and which backend to use instead."""


class Backend:
    """Runs the fusion model. Subclasses set ``name`` and ``tolerance`` and override :meth:`infer`,
    :meth:`infer_subsets` or both (each default is written with the other).

    Raises:
        TypeError: at class definition, a subclass that overrides neither (its calls would never end).
    """

    name: str = ""
    tolerance: float = 0.0

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.infer is Backend.infer and cls.infer_subsets is Backend.infer_subsets:
            raise TypeError(f"{cls.__name__} must override Backend.infer or Backend.infer_subsets "
                            "(each default calls the other)")

    def infer(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Logits and contributions of ``batch`` with every modality it has: the all-modalities subset
        (``keep`` ``[[True, True, True]]``) of :meth:`infer_subsets`. This default serves backends whose graph
        answers subsets in one run (onnxruntime's subsets graph, Triton); backends with a plain forward override it.

        Shapes:
            ``batch`` padded to ``B`` windows -> logits ``(B, C)`` float32, contributions ``(B, 3)`` float32.

        Raises:
            whatever the backend's :meth:`infer_subsets` raises.
        """
        logits, contrib = self.infer_subsets(batch, np.ones((1, 3), bool))
        return logits[:, 0], contrib[:, 0]

    def infer_subsets(self, batch: Batch, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(B, S, C)`` and contributions ``(B, S, 3)``, float32, of ``batch`` for each subset ``keep[s]``.

        Subset ``s`` equals :meth:`infer` on the batch with only the modalities ``keep[s]`` marks (the others
        absent), within :attr:`tolerance`. This default calls :meth:`infer` once per subset.

        Shapes:
            ``keep`` ``(S, 3)`` bool in (text, audio, visual) order.

        Raises:
            whatever the backend's :meth:`infer` raises.
        """
        outs = [self.infer(keep_modalities(batch, k)) for k in np.asarray(keep, bool).reshape(-1, 3)]
        return (np.stack([o[0] for o in outs], axis=1).astype(np.float32, copy=False),
                np.stack([o[1] for o in outs], axis=1).astype(np.float32, copy=False))
