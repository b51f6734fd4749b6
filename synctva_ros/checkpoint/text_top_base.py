"""The base text encoder's pretrained top layers: read from a Hugging Face encoder, ready to fine-tune.

:class:`~synctva_ros.model.text_top.TextTopLayers` (the layers themselves) never loads
weights; this module is where they come from for training. :func:`load_base_layers` reads
the layer spec (``config.json``) and the weights of encoder layers ``l .. l+K-1`` from a
:class:`~synctva_ros.features.text.TextEncoder`, a model directory or a configured name, and
the base encoder's identity (name, weights sha256, the same rule as ``TextEncoder.identity()``).
:func:`special_token_states` calibrates the special-token states (mean layer-``l`` state of
``[CLS]``/``[SEP]`` over calibration texts; why: :mod:`synctva_ros.model.text_top`), and
:func:`build_text_top` puts both together. Restoring fine-tuned layers from a checkpoint
(base + deltas) is :mod:`synctva_ros.checkpoint.text_top_deltas`.

Supported encoders: post-LayerNorm layers under the names of
:data:`~synctva_ros.model.text_top.LAYER_NAMES` (by ``model_type``): BERT-style naming with absolute
positions (BERT, RoBERTa, MiniLM, XLM-R: ``encoder.layer.{i}.attention.self.query`` ...), and MPNet
(``encoder.layer.{i}.attention.attn.q`` ..., plus its shared relative position bias table
``encoder.relative_attention_bias.weight``, read with the layers; Song et al., NeurIPS 2020) (Hugging
Face ``transformers`` ``config.json`` keys).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from synctva_ros.core.hashing import file_sha256
from synctva_ros.features.text import TextEncoder
from synctva_ros.features.weights import encoder_weights_file, resolve_text_encoder
from synctva_ros.model.text_top import RELATIVE_BIAS_NAMES, TextTopLayers, layer_names

__all__ = ["CALIBRATION_TEXTS", "load_base_layers", "special_token_states", "build_text_top"]

#: Default calibration texts for the special-token states (conversational English; training
#: passes its own training transcripts instead).
CALIBRATION_TEXTS = (
    "Oh my god, I can't believe you did that!", "You must've had your hands full.",
    "I am so happy for you, this is wonderful news.", "Get out of my apartment right now.",
    "Well, I guess that is fine with me.", "That is disgusting, who would eat that?",
    "I'm scared, did you hear that noise?", "Okay.", "What time is it?", "No. Absolutely not.",
    "Hey, how are you doing today?", "I don't know what you're talking about.",
    "Thank you so much for coming.", "Wait, what?", "This is the worst day of my life.",
    "Could you pass me the salt, please?",
)


def _base_info(base: Any) -> tuple[dict[str, Any], str, Any]:
    """``(config dict, weights sha256, source)`` of a TextEncoder, a model directory or a name."""
    if hasattr(base, "model") and hasattr(base, "identity"):  # a features.text.TextEncoder
        ident = base.identity()
        # its weight file when there is one: the encoder may run only the layers below its text_layer
        wf = encoder_weights_file(getattr(base, "resolved", ""))
        return base.model.config.to_dict(), str(ident["weights_sha256"]), base if wf is None else wf
    resolved = resolve_text_encoder(str(base))
    wf = encoder_weights_file(resolved)
    if wf is None:
        raise FileNotFoundError(f"no weight file (model.safetensors / pytorch_model.bin) for text encoder "
                                f"'{base}' ({resolved})")
    cfg_path = wf.parent / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} is missing")
    return json.loads(cfg_path.read_text()), file_sha256(wf), wf


def _read_tensors(source: Any, wanted_suffixes: list[str]) -> tuple[dict[str, Tensor], str]:
    """Tensors whose names end with the wanted suffixes -> (``{suffix: Tensor}``, prefix)."""
    if isinstance(source, Path):
        if source.suffix == ".safetensors":
            with safe_open(str(source), framework="pt") as fh:
                names = list(fh.keys())
                pick = _match(names, wanted_suffixes)
                return {s: fh.get_tensor(n) for s, n in pick[0].items()}, pick[1]
        state = torch.load(str(source), map_location="cpu", weights_only=True)
    else:
        state = source.model.state_dict()
    pick = _match(list(state), wanted_suffixes)
    return {s: state[n].detach().cpu().clone() for s, n in pick[0].items()}, pick[1]


def _match(names: list[str], suffixes: list[str]) -> tuple[dict[str, str], str]:
    """``({suffix: full name}, prefix)``: the prefix (``""``, ``bert.``, ``roberta.`` ...) is the first suffix's."""
    anchor = suffixes[0]
    hits = [n for n in names if n == anchor or n.endswith("." + anchor)]
    if not hits:
        raise KeyError(f"the base encoder has no '{anchor}' (its layers are not named as BERT's or MPNet's, "
                       f"or it has too few layers)")
    prefix = hits[0][: len(hits[0]) - len(anchor)]
    out = {}
    for s in suffixes:
        if prefix + s not in names:
            raise KeyError(f"the base encoder has no tensor '{prefix + s}'")
        out[s] = prefix + s
    return out, prefix


def load_base_layers(base: Any, text_layer: int, num_layers: int, name: str | None = None
                     ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Tensor]]:
    """Spec, identity and pretrained weights of the base encoder's layers above ``text_layer``.

    Args:
        base: a :class:`~synctva_ros.features.text.TextEncoder` (its loaded model is used), a
            model directory, or a configured name (``all-MiniLM-L6-v2``; see
            :func:`~synctva_ros.features.text.resolve_text_encoder`).
        text_layer: hidden-states index the nodes come from (``-1`` = last, ``0`` = embeddings);
            the layers used are ``l .. l+K-1`` (0-based encoder layers) with ``l`` = ``text_layer``
            resolved against the depth ``L``.
        num_layers: ``K`` >= 1.
        name: configured encoder name recorded in the identity (default: ``base.name`` or ``base``).

    Returns:
        ``(spec, identity, {"encoder.layer.{i}.<suffix>": Tensor})``; identity has ``name``,
        ``weights_sha256`` (same rule as ``TextEncoder.identity()``), ``model_type``, ``prefix``. For MPNet
        the spec also has ``model_type``, ``relative_buckets`` and ``relative_max_distance``, and the
        tensors hold the shared ``encoder.relative_attention_bias.weight`` ``(buckets, heads)``.

    Raises:
        ValueError: ``K < 1``, ``l + K > L`` or a ``position_embedding_type`` other than absolute;
        KeyError: the layers are not under the names of their ``model_type``;
        FileNotFoundError: no weights on disk for a path/name.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    cfg, sha, source = _base_info(base)
    depth = int(cfg["num_hidden_layers"])
    lo = depth + 1 + text_layer if text_layer < 0 else text_layer
    if not 0 <= lo or lo + num_layers > depth:
        raise ValueError(f"text_layer={text_layer} + {num_layers} top layers exceeds the encoder's {depth} layers "
                         f"(use text_layer={depth - num_layers})")
    act = cfg.get("hidden_act", "gelu")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"unsupported position_embedding_type {cfg.get('position_embedding_type')!r}")
    spec = {"hidden": int(cfg["hidden_size"]), "heads": int(cfg["num_attention_heads"]),
            "intermediate": int(cfg["intermediate_size"]), "act": act,
            "eps": float(cfg.get("layer_norm_eps", 1e-12)),
            "dropout": float(cfg.get("hidden_dropout_prob", 0.1)),
            "layers": list(range(lo, lo + num_layers)), "text_layer": int(text_layer)}
    model_type = cfg.get("model_type")
    suffixes = [f"encoder.layer.{i}.{hf}.{leaf}" for i in spec["layers"]
                for hf in layer_names(model_type).values() for leaf in ("weight", "bias")]
    if model_type in RELATIVE_BIAS_NAMES:  # MPNet: T5-style buckets, max distance fixed in its code (128)
        spec.update({"model_type": str(model_type), "relative_buckets": int(cfg["relative_attention_num_buckets"]),
                     "relative_max_distance": 128})
        suffixes.append(RELATIVE_BIAS_NAMES[model_type])
    tensors, prefix = _read_tensors(source, suffixes)
    ident = {"name": name or str(getattr(base, "name", base)), "weights_sha256": sha,
             "model_type": model_type, "prefix": prefix}
    return spec, ident, {k: v.float() for k, v in tensors.items()}


def _as_encoder(base: Any) -> Any:
    """``base`` itself when it is a loaded encoder (has ``model`` and ``tokenizer``), else a TextEncoder of it."""
    if hasattr(base, "model") and hasattr(base, "tokenizer"):
        return base
    return TextEncoder(str(base))


@torch.inference_mode()
def special_token_states(base: Any, text_layer: int, texts: Any = CALIBRATION_TEXTS) -> Tensor:
    """Mean layer-``text_layer`` state of each special token of the encoder over ``texts``.

    Args:
        base: a :class:`~synctva_ros.features.text.TextEncoder`, a model directory or a name.
        text_layer: hidden-states index (``-1`` = last, ``0`` = embeddings).
        texts: calibration texts (non-empty strings).

    Returns:
        ``(S, F)`` float32, one row per distinct special token in the order the tokenizer
        places them (BERT: ``[CLS]``, ``[SEP]``); ``(0, F)`` when the tokenizer adds none.

    Raises:
        ValueError: no non-empty text.
    """
    enc = _as_encoder(base)
    texts = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("special_token_states needs at least one non-empty text")
    tok = enc.tokenizer(texts, padding=True, truncation=True, max_length=getattr(enc, "_max_length", 128),
                        return_special_tokens_mask=True, return_tensors="pt")
    sp = tok.pop("special_tokens_mask").bool() & tok["attention_mask"].bool()
    if getattr(enc, "layer", None) == text_layer and hasattr(enc, "layer_states"):
        h, _ = enc.layer_states(dict(tok))  # the encoder may run only the layers up to text_layer
    else:
        device = next(enc.model.parameters()).device
        out = enc.model(**{k: v.to(device) for k, v in tok.items()}, output_hidden_states=True)
        h = out.hidden_states[text_layer].float().cpu()
    ids = tok["input_ids"]
    order: list[int] = []
    for i in ids[0][sp[0]].tolist():
        if i not in order:
            order.append(i)
    if not order:
        return torch.zeros(0, h.shape[-1])
    return torch.stack([h[sp & (ids == i)].mean(0) for i in order])


def build_text_top(base: Any, text_layer: int, num_layers: int, name: str | None = None,
                   texts: Any = CALIBRATION_TEXTS, context_keys: bool = False) -> TextTopLayers:
    """:class:`TextTopLayers` initialised from the pretrained layers and special-token states.

    Args:
        base, text_layer, num_layers, name: see :func:`load_base_layers`.
        texts: calibration texts for :func:`special_token_states` (training: training transcripts).
        context_keys: the layers attend over the dialogue context's states (``features.text_context_states``;
            :class:`~synctva_ros.model.text_top.TextTopLayers`).

    Returns:
        The layers (train mode) with the pretrained weights of encoder layers ``l .. l+K-1``,
        ``special`` ``(S, F)`` set to the calibrated states, and ``base`` = the encoder's identity
        (``name`` is ``base`` itself when a path or name is given and ``name`` is ``None``).

    Raises:
        see :func:`load_base_layers` and :func:`special_token_states`.
    """
    enc = _as_encoder(base)
    spec, ident, state = load_base_layers(enc, text_layer, num_layers, name)
    if name is None and isinstance(base, (str, os.PathLike)):
        ident["name"] = str(base)
    special = special_token_states(enc, text_layer, texts)
    spec["special_tokens"] = int(special.shape[0])
    spec["context_keys"] = bool(context_keys)
    top = TextTopLayers(spec, ident)
    top.load_hf_state(state)
    with torch.no_grad():
        top.special.copy_(special)
    return top
