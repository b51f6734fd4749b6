"""Checkpoints of fine-tuned text-encoder top layers: the deltas to the base encoder, and their restoring.

A model with ``ModelConfig.text_top_layers = K > 0`` runs the base encoder's top K layers
(:class:`~synctva_ros.model.text_top.TextTopLayers`) inside the fusion model. Its checkpoint
(:mod:`synctva_ros.checkpoint.io` extra tensors, prefix ``text_encoder.``) stores only the
**deltas** (fine-tuned minus pretrained) of the K layers, under the base encoder's own
parameter names (``text_encoder.encoder.layer.4.attention.self.query.weight``), the special
token states in full (``text_encoder.top.special``, ``(S, F)``: they are not in the base), plus a
manifest entry ``text_top`` (:data:`MANIFEST_KEY`) with the layer spec and the base encoder's
name and weights sha256. Restoring re-reads the pretrained layers from the base encoder
(:func:`~synctva_ros.checkpoint.text_top_base.load_base_layers`), refuses a different hash
(:class:`~synctva_ros.checkpoint.io.CheckpointError`) and adds the deltas. A model built with
``text_top_layers > 0`` and no layers attached refuses to run (never on weights it was not
trained with). MPNet's relative position bias table is not fine-tuned: it is no delta, and restoring
takes it from the base encoder with the layers (:mod:`synctva_ros.model.text_top`). Layers trained with LoRA store
their low-rank factors instead of dense deltas (manifest ``text_top.lora``; :mod:`.text_top_lora`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from synctva_ros.checkpoint.io import EXTRA_PREFIX, CheckpointError, load_checkpoint, save_checkpoint
from synctva_ros.checkpoint.text_top_base import load_base_layers
from synctva_ros.checkpoint.text_top_lora import LORA_PREFIX, has_lora, lora_deltas, lora_entry, lora_factors
from synctva_ros.model.text_top import TextTopLayers

__all__ = ["MANIFEST_KEY", "text_top_deltas", "save_text_top_checkpoint", "restore_text_top",
           "load_text_top_checkpoint"]

#: Manifest key holding the layer spec and the base encoder identity.
MANIFEST_KEY = "text_top"
_SPECIAL_KEY = EXTRA_PREFIX + "top.special"


def text_top_deltas(model: nn.Module, dtype: torch.dtype = torch.float32,
                    base_state: Mapping[str, Tensor] | None = None, base: Any = None
                    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Deltas (fine-tuned minus pretrained) of ``model.text_top`` and its manifest entry.

    Args:
        model: a :class:`~synctva_ros.model.synctva.SyncTVA` with attached top layers.
        dtype: storage dtype of the deltas (``float32``: exact round trip; ``float16``: half the size).
        base_state: the pretrained ``{"encoder.layer.{i}...": Tensor}`` (default: re-read from ``base``).
        base: where to re-read them (default: ``model.text_top.base["name"]``).

    Returns:
        ``({"text_encoder.encoder.layer.{i}...": delta}, {"spec", "base", "delta_dtype"})``.

    Raises:
        RuntimeError: no top layers attached or no base identity; ValueError: the re-read base
        has another hash than the one the layers were initialised from.
    """
    top = getattr(model, "text_top", None)
    if top is None or top.base is None:
        raise RuntimeError("the model has no text top layers initialised from a base encoder")
    if base_state is None and not has_lora(top):
        _, ident, base_state = load_base_layers(base if base is not None else top.base["name"],
                                                top.spec["text_layer"], len(top.spec["layers"]))
        if ident["weights_sha256"] != top.base["weights_sha256"]:
            raise ValueError(f"base encoder hash {ident['weights_sha256']} differs from the one the layers were "
                             f"initialised from ({top.base['weights_sha256']})")
    entry = {"spec": dict(top.spec), "base": dict(top.base), "delta_dtype": str(dtype).replace("torch.", "")}
    if has_lora(top):  # LoRA: the factors only (the other tensors of the layers were not trained)
        deltas = {EXTRA_PREFIX + k: v for k, v in lora_factors(top, dtype).items()}
        entry["lora"] = lora_entry(top)
    else:
        deltas = {EXTRA_PREFIX + k: (v.detach().float().cpu() - base_state[k].float()).to(dtype)
                  for k, v in top.hf_state().items()}
    deltas[_SPECIAL_KEY] = top.special.detach().float().cpu()  # not in the base: stored in full (fp32)
    return deltas, entry


def save_text_top_checkpoint(directory: str | os.PathLike[str], model: nn.Module,
                             manifest: Mapping[str, Any] | None = None, dtype: torch.dtype = torch.float32,
                             base: Any = None, base_state: Mapping[str, Tensor] | None = None) -> Path:
    """:func:`~synctva_ros.checkpoint.io.save_checkpoint` with the top layers stored as deltas.

    The fusion weights go to ``model.safetensors`` as usual; the top layers do not (they are
    detached while saving) but their deltas are stored as ``text_encoder.*`` extra tensors and
    the manifest gets ``text_top`` (spec, base identity, delta dtype). A model without top
    layers is saved unchanged.

    Args:
        directory: checkpoint directory (created if needed).
        model: a :class:`~synctva_ros.model.synctva.SyncTVA`, with or without attached top layers.
        manifest: descriptive manifest keys (see ``save_checkpoint``).
        dtype, base, base_state: see :func:`text_top_deltas` (training passes the ``base_state`` it
            initialised the layers from, so each save needs no re-read of the encoder).

    Returns:
        The directory path.

    Raises:
        see :func:`text_top_deltas` and ``save_checkpoint``.
    """
    if getattr(model, "text_top", None) is None:
        return save_checkpoint(directory, model, manifest)
    deltas, entry = text_top_deltas(model, dtype, base_state=base_state, base=base)
    man = {**dict(manifest or {}), MANIFEST_KEY: entry}
    top = model.detach_text_top()
    try:
        return save_checkpoint(directory, model, man, extra_tensors=deltas)
    finally:
        model.attach_text_top(top)


def restore_text_top(model: nn.Module, manifest: Mapping[str, Any], base: Any) -> nn.Module:
    """Rebuild the fine-tuned top layers of a loaded checkpoint and attach them to ``model``.

    Args:
        model, manifest: what :func:`~synctva_ros.checkpoint.io.load_checkpoint` returned.
        base: the base encoder (a TextEncoder — e.g. the pipeline's text extractor — a model
            directory, or a name); its pretrained layers are re-read from it.

    Returns:
        ``model`` (in place). Models with ``text_top_layers == 0`` or an inactive text branch
        are returned unchanged.

    Raises:
        CheckpointError: the manifest lacks the ``text_top`` entry or deltas, the base
        encoder's weights hash differs from the recorded one, or spec/shapes do not match.
    """
    k = int(getattr(model, "text_top_layers", 0))
    if k == 0 or not model.active.get("text", False):
        return model
    entry = manifest.get(MANIFEST_KEY)
    if not isinstance(entry, Mapping) or "spec" not in entry or "base" not in entry:
        raise CheckpointError(f"the checkpoint has text_top_layers={k} but no '{MANIFEST_KEY}' manifest entry")
    spec, want = entry["spec"], entry["base"]
    try:
        spec2, ident, state = load_base_layers(base, int(spec["text_layer"]), k, want.get("name"))
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise CheckpointError(f"cannot read the base text encoder's top layers: {exc}") from exc
    if ident["weights_sha256"] != want.get("weights_sha256"):
        raise CheckpointError(f"base text encoder weights differ from the ones the top layers were fine-tuned "
                              f"from: sha256 {ident['weights_sha256']} here, {want.get('weights_sha256')} in the "
                              f"checkpoint ({want.get('name')})")
    diff = sorted(key for key in ("hidden", "heads", "intermediate", "act", "layers", "model_type",
                                  "relative_buckets", "relative_max_distance") if spec2.get(key) != spec.get(key))
    if diff:
        raise CheckpointError(f"base text encoder layer spec differs from the checkpoint's in {diff}")
    extra = manifest.get("_extra_tensors") or {}
    top = TextTopLayers(spec, ident)
    frozen = set(top.frozen_hf_keys())  # restored from the base as they are (MPNet's relative bias table)
    if entry.get("lora"):  # LoRA factors -> the dense deltas of a full fine-tuning checkpoint
        try:
            dense = lora_deltas({k[len(EXTRA_PREFIX):]: v for k, v in extra.items()
                                 if k.startswith(EXTRA_PREFIX + LORA_PREFIX)},
                                state, [k for k in state if k not in frozen], entry["lora"])
        except ValueError as exc:
            raise CheckpointError(f"cannot restore the text layers' LoRA factors: {exc}") from exc
        extra = {**{EXTRA_PREFIX + k: v for k, v in dense.items()},
                 **({_SPECIAL_KEY: extra[_SPECIAL_KEY]} if _SPECIAL_KEY in extra else {})}
    merged = {}
    for key, t in state.items():
        if key in frozen:
            merged[key] = t.float()
            continue
        d = extra.get(EXTRA_PREFIX + key)
        if d is None:
            raise CheckpointError(f"the checkpoint lacks the delta '{EXTRA_PREFIX + key}'")
        if tuple(d.shape) != tuple(t.shape):
            raise CheckpointError(f"delta '{EXTRA_PREFIX + key}' has shape {tuple(d.shape)}, expected "
                                  f"{tuple(t.shape)}")
        merged[key] = t.float() + d.float()
    n_special = int(spec.get("special_tokens", 0))
    special = extra.get(_SPECIAL_KEY)
    if special is None or tuple(special.shape) != (n_special, int(spec["hidden"])):
        raise CheckpointError(f"the checkpoint's '{_SPECIAL_KEY}' is missing or not ({n_special}, {spec['hidden']})")
    unknown = sorted(set(extra) - {EXTRA_PREFIX + key for key in state if key not in frozen} - {_SPECIAL_KEY})
    if unknown:
        raise CheckpointError(f"unexpected text_encoder tensors {unknown[:5]}")
    try:
        top.load_hf_state(merged)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot restore the text top layers: {exc}") from exc
    with torch.no_grad():
        top.special.copy_(special.float())
    device = next(model.parameters()).device
    model.attach_text_top(top.to(device).train(model.training))
    return model


def load_text_top_checkpoint(directory: str | os.PathLike[str], base: Any,
                             expected_extractors: Mapping[str, dict | None] | None = None,
                             map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """:func:`~synctva_ros.checkpoint.io.load_checkpoint` followed by :func:`restore_text_top`.

    Args:
        directory, expected_extractors, map_location: see ``load_checkpoint``.
        base: the base encoder (see :func:`restore_text_top`).

    Returns:
        ``(model in eval mode with its top layers attached, manifest)``.

    Raises:
        CheckpointError: see both functions.
    """
    model, man = load_checkpoint(directory, expected_extractors, map_location)
    return restore_text_top(model, man, base), man
