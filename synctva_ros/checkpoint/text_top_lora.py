"""LoRA on the fine-tuned text layers (issue 8): train low-rank factors through ``peft``, ship only the factors.

Fine-tuning K text-encoder layers in full stores K dense deltas (:mod:`~synctva_ros.checkpoint.text_top_deltas`):
7.1 M parameters per all-mpnet-base-v2 layer, so a 30 MB checkpoint holds at most one fp16 mpnet layer. LoRA
(Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022) freezes each pretrained weight ``W``
``(out, in)`` and trains ``ΔW = (α / r) B A`` with ``A`` ``(r, in)`` and ``B`` ``(out, r)`` (``B`` starts at zero, so
training starts from the pretrained layers). With rank ``r = 8`` on all six linear maps of a layer
(:data:`TARGETS`: query, key, value, attention output, intermediate, output) an mpnet layer adds 0.29 M parameters
instead of 7.1 M: all twelve layers fit in 7 MB of fp16 factors.

* Training (``training.lora_rank > 0``): :func:`add_lora` injects ``peft`` LoRA layers
  (``peft.inject_adapter_in_model`` with a ``LoraConfig`` naming :data:`TARGETS`) into
  :class:`~synctva_ros.model.text_top.TextTopLayers`; only the factors and the special-token states
  (``special``) are trained; biases and LayerNorms stay pretrained.
* Checkpoint (:func:`lora_factors`, written by ``save_text_top_checkpoint``): ``text_encoder.lora.<hf name>.A``
  ``(r, in)`` and ``.B`` ``(out, r)`` (``B`` already scaled by ``α / r``) per target under the base encoder's
  parameter names (``encoder.layer.{i}.attention.self.query``), ``text_encoder.top.special`` in full, and the
  manifest's ``text_top.lora`` (``rank``, ``alpha``, ``targets``).
* Restoring (:func:`lora_deltas`, called by ``restore_text_top``): ``B A`` is the dense delta of each target weight
  and every other tensor of the layers has delta 0; the layers are then rebuilt exactly as a full fine-tuning
  checkpoint's (plain :class:`~synctva_ros.model.text_top.TextTopLayers` with merged weights: no ``peft`` at
  inference, the exported graphs unchanged).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from synctva_ros.model.text_top import layer_names

__all__ = ["TARGETS", "LORA_PREFIX", "add_lora", "has_lora", "lora_entry", "lora_factors", "lora_deltas"]

#: The linear maps of :class:`~synctva_ros.model.text_top.TextTopLayer` that get LoRA factors.
TARGETS = ("query", "key", "value", "attn_out", "inter", "out")
#: Extra-tensor name prefix of the factors (after the checkpoint's ``text_encoder.``).
LORA_PREFIX = "lora."


def add_lora(top: nn.Module, rank: int, alpha: float = 0.0, dropout: float = 0.0) -> nn.Module:
    """Inject LoRA factors into every :data:`TARGETS` linear map of ``top`` (in place, ``peft``) and freeze the rest.

    Args:
        top: a :class:`~synctva_ros.model.text_top.TextTopLayers` with its pretrained weights.
        rank: ``r`` (>= 1).
        alpha: ``α``; 0 means ``2 r`` (scale 2).
        dropout: dropout on the factors' input during training.

    Returns:
        ``top``; its trainable parameters are the factors and ``special``.

    Raises:
        ValueError: ``rank < 1``, or ``top`` already has factors. ImportError: ``peft`` is not installed.
    """
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    if has_lora(top):
        raise ValueError("the text layers already have LoRA factors")
    from synctva_ros.features.torchvision_compat import ensure_torchvision

    ensure_torchvision()  # peft imports transformers, which imports torchvision
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=int(rank), lora_alpha=float(alpha or 2 * rank), lora_dropout=float(dropout),
                        target_modules=list(TARGETS), bias="none")
    inject_adapter_in_model(config, top)
    for name, p in top.named_parameters():
        p.requires_grad_(".lora_" in name or name == "special")
    top.lora = {"rank": int(rank), "alpha": float(alpha or 2 * rank), "targets": list(TARGETS)}
    return top


def has_lora(top: nn.Module | None) -> bool:
    """Whether ``top`` carries LoRA factors (:func:`add_lora`)."""
    return bool(getattr(top, "lora", None))


def lora_entry(top: nn.Module) -> dict[str, Any]:
    """The manifest's ``text_top.lora``: ``{"rank", "alpha", "targets"}``."""
    return dict(top.lora)


def _targets(top: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(hf name of the weight without ".weight", peft LoRA linear)`` for every target of every layer."""
    names = layer_names(top.spec.get("model_type"))
    out = []
    for layer, i in zip(top.layers, top.spec["layers"]):
        for t in TARGETS:
            module = getattr(layer, t)
            out.append((f"encoder.layer.{int(i)}.{names[t]}", module))
    return out


def lora_factors(top: nn.Module, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """The factors as checkpoint extra tensors (module docstring), without the ``text_encoder.`` prefix.

    Returns:
        ``{"lora.<hf name>.A": (r, in), "lora.<hf name>.B": (out, r) scaled by α / r}`` in ``dtype``.

    Raises:
        ValueError: ``top`` has no LoRA factors.
    """
    if not has_lora(top):
        raise ValueError("the text layers have no LoRA factors")
    out: dict[str, Tensor] = {}
    for hf, module in _targets(top):
        a = module.lora_A["default"].weight.detach().float().cpu()
        b = module.lora_B["default"].weight.detach().float().cpu() * float(module.scaling["default"])
        out[f"{LORA_PREFIX}{hf}.A"], out[f"{LORA_PREFIX}{hf}.B"] = a.to(dtype), b.to(dtype)
    return out


def lora_deltas(factors: Mapping[str, Tensor], base_state: Mapping[str, Tensor], keys: list[str],
                entry: Mapping[str, Any]) -> dict[str, Tensor]:
    """Dense deltas of a LoRA checkpoint: ``B A`` for each target weight, zeros for the other layer tensors.

    Args:
        factors: the checkpoint's ``lora.*`` tensors (prefix ``text_encoder.`` removed).
        base_state: the pretrained layers (``{"encoder.layer.{i}...": Tensor}``) for the shapes.
        keys: the layer tensors that take a delta (the non-frozen keys of ``base_state``).
        entry: the manifest's ``text_top.lora``.

    Returns:
        ``{key: delta}`` for every key of ``keys`` (float32).

    Raises:
        ValueError: a factor is missing, has the wrong rank or shape, or a factor is left over.
    """
    rank = int(entry.get("rank", 0))
    used, out = set(), {}
    for key in keys:
        shape = tuple(base_state[key].shape)
        stem = key[:-len(".weight")] if key.endswith(".weight") else None
        a_key, b_key = f"{LORA_PREFIX}{stem}.A", f"{LORA_PREFIX}{stem}.B"
        if stem is None or (a_key not in factors and b_key not in factors):  # not a LoRA target
            out[key] = torch.zeros(shape)
            continue
        a, b = factors.get(a_key), factors.get(b_key)
        if a is None or b is None or tuple(a.shape) != (rank, shape[1]) or tuple(b.shape) != (shape[0], rank):
            raise ValueError(f"LoRA factors of {stem}: A {None if a is None else tuple(a.shape)}, B "
                             f"{None if b is None else tuple(b.shape)}; expected ({rank}, {shape[1]}), "
                             f"({shape[0]}, {rank})")
        out[key] = b.float() @ a.float()
        used.update((a_key, b_key))
    left = sorted(set(factors) - used)
    if left:
        raise ValueError(f"LoRA factors of no layer weight: {left[:4]}")
    n_layers = len({key.split(".")[2] for key in keys if key.startswith("encoder.layer.")})
    expected = n_layers * len(entry.get("targets", TARGETS))
    if len(used) // 2 != expected:
        raise ValueError(f"{len(used) // 2} LoRA targets in the checkpoint, {expected} expected")
    return out
