"""Writing what a training run produced: the checkpoint (size-checked) and ``metrics.json``.

The checkpoint holds only trained parameters: the fusion model (float32, as every checkpoint of
this package) and, with fine-tuned text top layers, their **deltas** to the base encoder in
``training.delta_dtype`` (float16 by default) plus the base encoder's name and weights sha256
(:func:`~synctva_ros.checkpoint.text_top_deltas.save_text_top_checkpoint`); the frozen encoder is
never copied. A checkpoint over ``training.max_checkpoint_mb`` (30 MB by default, the shipping
limit of issue 8) is refused with :class:`CheckpointTooLarge` before it replaces anything.

Metrics written everywhere (manifest ``metrics``, ``metrics.json``, ``seeds.json``) carry
accuracy, weighted F1 and macro F1 side by side (:data:`REPORTED`).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch

from synctva_ros.checkpoint import MANIFEST_FILE, WEIGHTS_FILE, save_checkpoint, save_text_top_checkpoint
from synctva_ros.checkpoint.text_top_lora import has_lora
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.model.synctva import SyncTVA

__all__ = ["CheckpointTooLarge", "METRICS_FILE", "REPORTED", "metric_summary", "save_trained", "write_metrics"]

#: Per-run metrics file next to the checkpoint.
METRICS_FILE = "metrics.json"
#: Headline metrics reported for every split (fractions in [0, 1]).
REPORTED = ("accuracy", "weighted_f1", "macro_f1")
_KEPT = ("n", *REPORTED, "per_class", "confusion")
_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class CheckpointTooLarge(ValueError):
    """The checkpoint's weights exceed ``training.max_checkpoint_mb``."""


def metric_summary(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``n``, accuracy, weighted/macro F1, per-class scores and confusion of a metrics dict (``None`` -> ``None``)."""
    if metrics is None:
        return None
    return {k: metrics[k] for k in _KEPT if k in metrics}


def save_trained(out: str | os.PathLike[str], model: SyncTVA, state: Mapping[str, torch.Tensor],
                 manifest: Mapping[str, Any], identities: Mapping[str, Any], *, delta_dtype: str = "float16",
                 base_state: Mapping[str, torch.Tensor] | None = None, max_mb: float = 30.0) -> Path:
    """Save ``model`` with weights ``state`` as a checkpoint in ``out``; returns ``out``.

    The files are written into ``out/.saving`` first and moved into ``out`` only when the weights
    are within ``max_mb``, so a refused checkpoint never replaces a good one.

    Args:
        out: checkpoint directory.
        model: the trained model (not modified; a copy gets ``state``).
        state: the weights to store (``model.state_dict()`` keys; the best epoch's).
        manifest: ``name``, ``training``, ``metrics`` (see :func:`~synctva_ros.checkpoint.save_checkpoint`).
        identities: extractor identities; inactive branches are stored as ``None``.
        delta_dtype: ``float16`` or ``float32``, storage dtype of the text top layers' deltas.
        base_state: the base encoder's pretrained top-layer weights (default: re-read from the encoder).
        max_mb: limit on ``model.safetensors`` in MB (1e6 bytes).

    Returns:
        ``Path(out)``.

    Raises:
        CheckpointTooLarge: the weights file would exceed ``max_mb`` (the message gives the sizes).
    """
    out = Path(out)
    snap = copy.deepcopy(model).cpu()
    snap.load_state_dict(state)
    snap.eval()
    man = {**dict(manifest), "extractors": {m: (identities.get(m) if snap.active[m] else None) for m in MODALITIES}}
    tmp = out / ".saving"
    shutil.rmtree(tmp, ignore_errors=True)
    if snap.text_top is not None:
        save_text_top_checkpoint(tmp, snap, man, _DTYPES[delta_dtype], base_state=base_state)
    else:
        save_checkpoint(tmp, snap, man)
    size = (tmp / WEIGHTS_FILE).stat().st_size
    if size > max_mb * 1e6:
        top = sum(p.numel() for p in snap.text_top.parameters()) if snap.text_top is not None else 0
        lora = has_lora(snap.text_top)  # LoRA: the factors and special states are stored, not the frozen layers
        stored = sum(p.numel() for p in snap.text_top.parameters() if p.requires_grad) if lora else top
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointTooLarge(
            f"checkpoint weights would be {size / 1e6:.1f} MB, over training.max_checkpoint_mb={max_mb:g} "
            f"({stored} fine-tuned text-encoder parameters stored as {delta_dtype} "
            f"{'LoRA factors' if lora else 'deltas'}, "
            f"{sum(p.numel() for p in snap.parameters()) - top} fusion parameters as float32): fine-tune fewer "
            f"layers (model.text_top_layers), use training.delta_dtype=float16, LoRA (training.lora_rank) or a "
            f"smaller model")
    for name in (WEIGHTS_FILE, MANIFEST_FILE):
        os.replace(tmp / name, out / name)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_metrics(out: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics`` as ``out/metrics.json`` (indented, via a temporary file); returns its path."""
    path = Path(out) / METRICS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, default=str))
    os.replace(tmp, path)
    return path
