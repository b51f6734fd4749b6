"""Fine-tuning the text encoder's top K transformer layers inside Sync-TVA.

The paper (Sync-TVA, arXiv 2507.21395, Sec. 3.1) takes RoBERTa token states as the text
nodes. Fine-tuning the whole encoder is too slow on a robot's CPU and too big to ship, so
this module fine-tunes only its **top K layers**: the text extractor produces the hidden
states of layer ``features.text_layer`` (``hidden_states[l]``, 0 = embeddings), and
:class:`TextTopLayers` — a copy of encoder layers ``l .. l+K-1`` initialised from the
pretrained weights — runs on them inside the model, before MSDE
(``ModelConfig.text_top_layers = K``). With ``l + K = L`` (the encoder's depth) the output
at initialisation is the encoder's last layer, up to the special-token caveat below.

Special tokens: the extractor drops ``[CLS]``/``[SEP]`` (``<s>``/``</s>``) from the nodes
(:mod:`synctva_ros.features.text`). BERT-style layers lean on them (attention sinks): run on the
word pieces alone, MiniLM's top two layers gave states with a mean cosine of only 0.80 (worst
0.37) to the true last-layer states on 100 MELD utterances. So :class:`TextTopLayers` keeps one
trainable state per special token (``special``, ``(S, F)``), initialised with the mean
layer-``l`` state of that token over calibration texts, and prepends them as always-attended
keys (positions are already inside the states, so their place in the sequence does not
matter); their outputs are dropped. At initialisation that gives a mean cosine of 0.9995
(worst 0.995) to the true states, so the cache and the node contract stay unchanged.

Checkpoint (``checkpoint.py`` extra tensors, prefix ``text_encoder.``): only the **deltas**
(fine-tuned minus pretrained) of the K layers are stored, under the base encoder's own
parameter names (``text_encoder.encoder.layer.4.attention.self.query.weight``), the special
token states in full (``text_encoder.top.special``, ``(S, F)``: they are not in the base), plus a
manifest entry ``text_top`` with the layer spec and the base encoder's name and weights
sha256. Loading re-reads the pretrained layers from the base encoder, refuses a different
hash (:class:`~synctva_ros.checkpoint.CheckpointError`) and adds the deltas. A model built
with ``text_top_layers > 0`` and no layers attached refuses to run (never on weights it was
not trained with).

Supported encoders: BERT-style layer naming (BERT, RoBERTa, MiniLM, XLM-R:
``encoder.layer.{i}.attention.self.query`` ...), post-LayerNorm, absolute positions.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["TextTopLayer", "TextTopLayers", "load_base_layers", "special_token_states", "build_text_top",
           "text_top_deltas", "save_text_top_checkpoint", "restore_text_top", "load_text_top_checkpoint",
           "MANIFEST_KEY", "CALIBRATION_TEXTS"]


#: Manifest key holding the layer spec and the base encoder identity.
MANIFEST_KEY = "text_top"
_EXTRA_PREFIX = "text_encoder."
_SPECIAL_KEY = _EXTRA_PREFIX + "top.special"

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

#: Our parameter name -> Hugging Face BERT-layer suffix (``encoder.layer.{i}.`` + suffix).
_HF_NAMES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "attn_norm": "attention.output.LayerNorm",
    "inter": "intermediate.dense",
    "out": "output.dense",
    "out_norm": "output.LayerNorm",
}
_ACTS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "relu": None}


class TextTopLayer(nn.Module):
    """One post-LayerNorm BERT encoder layer (Devlin et al. 2019; Hugging Face ``BertLayer``), mask-aware.

    ``h = LN(x + Drop(W_o MHA(x)))``, ``y = LN(h + Drop(W_2 act(W_1 h)))`` with key padding
    masked out of the attention.

    Args:
        hidden: width ``F``; heads: attention heads (``F % heads == 0``); intermediate: FFN width;
        act: ``gelu`` (erf), ``gelu_new``/``gelu_pytorch_tanh``/``gelu_fast`` (tanh) or ``relu``;
        eps: LayerNorm epsilon; dropout: hidden and attention dropout (training only).

    Shapes:
        ``x`` ``(B, N, F)``, ``mask`` ``(B, N)`` bool (True = token) -> ``(B, N, F)``.

    Raises:
        ValueError: ``hidden`` not divisible by ``heads`` or an unknown activation.
    """

    def __init__(self, hidden: int, heads: int, intermediate: int, act: str = "gelu", eps: float = 1e-12,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden={hidden} is not divisible by heads={heads}")
        if act not in _ACTS:
            raise ValueError(f"unsupported activation '{act}' (known: {sorted(_ACTS)})")
        self.heads, self.head_dim, self.act = heads, hidden // heads, act
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.inter = nn.Linear(hidden, intermediate)
        self.out = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, n, f = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        # masked_fill (not an additive -inf): a row without tokens stays finite (uniform weights)
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        attn = self.drop(torch.softmax(scores, dim=-1))
        ctx = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, f)
        h = self.attn_norm(x + self.drop(self.attn_out(ctx)))
        z = self.inter(h)
        z = torch.relu(z) if self.act == "relu" else F.gelu(z, approximate=_ACTS[self.act])
        return self.out_norm(h + self.drop(self.out(z)))


class TextTopLayers(nn.Module):
    """The top K layers of a text encoder, applied to layer-``text_layer`` token states.

    Args:
        spec: ``{"hidden", "heads", "intermediate", "act", "eps", "dropout", "layers",
            "text_layer", "special_tokens"}`` where ``layers`` are the base encoder's 0-based layer
            indices (``l .. l+K-1``), ``text_layer`` is ``l`` and ``special_tokens`` is ``S``, the
            number of special-token states prepended (see the module docstring); see
            :func:`load_base_layers`.
        base: identity of the base encoder (``name``, ``weights_sha256``, ``architecture``,
            ``prefix``); ``None`` for a randomly initialised stack (tests only).

    Shapes:
        ``x`` ``(B, N, F)``, ``mask`` ``(B, N)`` bool -> ``(B, N, F)``; padded positions
        (mask False) are zeroed on input, so NaN padding cannot leak, and their outputs are
        meaningless (the model masks them).
    """

    def __init__(self, spec: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.spec = {k: spec[k] for k in ("hidden", "heads", "intermediate", "act", "eps", "dropout", "layers",
                                          "text_layer")}
        self.spec["layers"] = [int(i) for i in self.spec["layers"]]
        self.spec["special_tokens"] = int(spec.get("special_tokens", 0))
        self.base = dict(base) if base is not None else None
        self.special = nn.Parameter(torch.zeros(self.spec["special_tokens"], int(spec["hidden"])))
        self.layers = nn.ModuleList(
            TextTopLayer(int(spec["hidden"]), int(spec["heads"]), int(spec["intermediate"]), str(spec["act"]),
                         float(spec["eps"]), float(spec["dropout"])) for _ in self.spec["layers"])

    @property
    def dim(self) -> int:
        """Width ``F`` of the token states."""
        return int(self.spec["hidden"])

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        mask = mask.to(torch.bool)
        x = torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x))
        s = self.special.shape[0]
        if s:
            b = x.shape[0]
            x = torch.cat([self.special.to(x.dtype).unsqueeze(0).expand(b, -1, -1), x], dim=1)
            mask = torch.cat([torch.ones(b, s, dtype=torch.bool, device=mask.device), mask], dim=1)
        for layer in self.layers:
            x = layer(x, mask)
        return x[:, s:]

    def hf_state(self) -> dict[str, Tensor]:
        """``{"encoder.layer.{i}.<hf suffix>": Tensor}`` (base-encoder names, without the base's prefix)."""
        out: dict[str, Tensor] = {}
        for layer, i in zip(self.layers, self.spec["layers"]):
            for name, t in layer.state_dict().items():
                mod, _, leaf = name.rpartition(".")
                out[f"encoder.layer.{i}.{_HF_NAMES[mod]}.{leaf}"] = t
        return out

    def load_hf_state(self, state: Mapping[str, Tensor]) -> None:
        """Inverse of :meth:`hf_state`.

        Raises:
            KeyError: a tensor is missing; ValueError: a shape differs.
        """
        for layer, i in zip(self.layers, self.spec["layers"]):
            own = layer.state_dict()
            new = {}
            for name, t in own.items():
                mod, _, leaf = name.rpartition(".")
                key = f"encoder.layer.{i}.{_HF_NAMES[mod]}.{leaf}"
                if key not in state:
                    raise KeyError(f"base encoder has no tensor '{key}'")
                src = state[key]
                if tuple(src.shape) != tuple(t.shape):
                    raise ValueError(f"'{key}' has shape {tuple(src.shape)}, expected {tuple(t.shape)}")
                new[name] = src.to(t.dtype)
            layer.load_state_dict(new)


# ------------------------------------------------------------------ base encoder
def _base_info(base: Any) -> tuple[dict[str, Any], str, Any]:
    """``(config dict, weights sha256, source)`` of a TextEncoder, a model directory or a name."""
    if hasattr(base, "model") and hasattr(base, "identity"):  # a features.text.TextEncoder
        ident = base.identity()
        return base.model.config.to_dict(), str(ident["weights_sha256"]), base
    from synctva_ros.core.hashing import file_sha256
    from synctva_ros.features.text import _weights_file, resolve_text_encoder

    resolved = resolve_text_encoder(str(base))
    wf = _weights_file(resolved)
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
            from safetensors import safe_open

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
    anchor = suffixes[0]
    hits = [n for n in names if n == anchor or n.endswith("." + anchor)]
    if not hits:
        raise KeyError(f"the base encoder has no '{anchor}' (not a BERT-style encoder, or too few layers)")
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
        ``weights_sha256`` (same rule as ``TextEncoder.identity()``), ``model_type``, ``prefix``.

    Raises:
        ValueError: ``K < 1`` or ``l + K > L``; KeyError: not a BERT-style encoder;
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
    suffixes = [f"encoder.layer.{i}.{hf}.{leaf}" for i in spec["layers"] for hf in _HF_NAMES.values()
                for leaf in ("weight", "bias")]
    tensors, prefix = _read_tensors(source, suffixes)
    ident = {"name": name or str(getattr(base, "name", base)), "weights_sha256": sha,
             "model_type": cfg.get("model_type"), "prefix": prefix}
    return spec, ident, {k: v.float() for k, v in tensors.items()}


def _as_encoder(base: Any) -> Any:
    if hasattr(base, "model") and hasattr(base, "tokenizer"):
        return base
    from synctva_ros.features.text import TextEncoder

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
                   texts: Any = CALIBRATION_TEXTS) -> TextTopLayers:
    """:class:`TextTopLayers` initialised from the pretrained layers and special-token states.

    Args:
        base, text_layer, num_layers, name: see :func:`load_base_layers`.
        texts: calibration texts for :func:`special_token_states` (training: training transcripts).

    Raises:
        see :func:`load_base_layers` and :func:`special_token_states`.
    """
    enc = _as_encoder(base)
    spec, ident, state = load_base_layers(enc, text_layer, num_layers, name)
    if name is None and isinstance(base, (str, os.PathLike)):
        ident["name"] = str(base)
    special = special_token_states(enc, text_layer, texts)
    spec["special_tokens"] = int(special.shape[0])
    top = TextTopLayers(spec, ident)
    top.load_hf_state(state)
    with torch.no_grad():
        top.special.copy_(special)
    return top


# ------------------------------------------------------------------ checkpoints
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
    if base_state is None:
        _, ident, base_state = load_base_layers(base if base is not None else top.base["name"],
                                                   top.spec["text_layer"], len(top.spec["layers"]))
        if ident["weights_sha256"] != top.base["weights_sha256"]:
            raise ValueError(f"base encoder hash {ident['weights_sha256']} differs from the one the layers were "
                             f"initialised from ({top.base['weights_sha256']})")
    deltas = {_EXTRA_PREFIX + k: (v.detach().float().cpu() - base_state[k].float()).to(dtype)
              for k, v in top.hf_state().items()}
    deltas[_SPECIAL_KEY] = top.special.detach().float().cpu()  # not in the base: stored in full (fp32)
    entry = {"spec": dict(top.spec), "base": dict(top.base), "delta_dtype": str(dtype).replace("torch.", "")}
    return deltas, entry


def save_text_top_checkpoint(directory: str | os.PathLike[str], model: nn.Module,
                             manifest: Mapping[str, Any] | None = None, dtype: torch.dtype = torch.float32,
                             base: Any = None) -> Path:
    """:func:`~synctva_ros.checkpoint.save_checkpoint` with the top layers stored as deltas.

    The fusion weights go to ``model.safetensors`` as usual; the top layers do not (they are
    detached while saving) but their deltas are stored as ``text_encoder.*`` extra tensors and
    the manifest gets ``text_top`` (spec, base identity, delta dtype). A model without top
    layers is saved unchanged.

    Raises:
        see :func:`text_top_deltas` and ``save_checkpoint``.
    """
    from synctva_ros.checkpoint import save_checkpoint

    if getattr(model, "text_top", None) is None:
        return save_checkpoint(directory, model, manifest)
    deltas, entry = text_top_deltas(model, dtype, base=base)
    man = {**dict(manifest or {}), MANIFEST_KEY: entry}
    top = model.detach_text_top()
    try:
        return save_checkpoint(directory, model, man, extra_tensors=deltas)
    finally:
        model.attach_text_top(top)


def restore_text_top(model: nn.Module, manifest: Mapping[str, Any], base: Any) -> nn.Module:
    """Rebuild the fine-tuned top layers of a loaded checkpoint and attach them to ``model``.

    Args:
        model, manifest: what :func:`~synctva_ros.checkpoint.load_checkpoint` returned.
        base: the base encoder (a TextEncoder — e.g. the pipeline's text extractor — a model
            directory, or a name); its pretrained layers are re-read from it.

    Returns:
        ``model`` (in place). Models with ``text_top_layers == 0`` or an inactive text branch
        are returned unchanged.

    Raises:
        CheckpointError: the manifest lacks the ``text_top`` entry or deltas, the base
        encoder's weights hash differs from the recorded one, or spec/shapes do not match.
    """
    from synctva_ros.checkpoint import CheckpointError

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
    diff = sorted(key for key in ("hidden", "heads", "intermediate", "act", "layers") if spec2[key] != spec[key])
    if diff:
        raise CheckpointError(f"base text encoder layer spec differs from the checkpoint's in {diff}")
    extra = manifest.get("_extra_tensors") or {}
    merged = {}
    for key, t in state.items():
        d = extra.get(_EXTRA_PREFIX + key)
        if d is None:
            raise CheckpointError(f"the checkpoint lacks the delta '{_EXTRA_PREFIX + key}'")
        if tuple(d.shape) != tuple(t.shape):
            raise CheckpointError(f"delta '{_EXTRA_PREFIX + key}' has shape {tuple(d.shape)}, expected "
                                  f"{tuple(t.shape)}")
        merged[key] = t.float() + d.float()
    n_special = int(spec.get("special_tokens", 0))
    special = extra.get(_SPECIAL_KEY)
    if special is None or tuple(special.shape) != (n_special, int(spec["hidden"])):
        raise CheckpointError(f"the checkpoint's '{_SPECIAL_KEY}' is missing or not ({n_special}, {spec['hidden']})")
    unknown = sorted(set(extra) - {_EXTRA_PREFIX + key for key in state} - {_SPECIAL_KEY})
    if unknown:
        raise CheckpointError(f"unexpected text_encoder tensors {unknown[:5]}")
    top = TextTopLayers(spec, ident)
    top.load_hf_state(merged)
    with torch.no_grad():
        top.special.copy_(special.float())
    device = next(model.parameters()).device
    model.attach_text_top(top.to(device).train(model.training))
    return model


def load_text_top_checkpoint(directory: str | os.PathLike[str], base: Any,
                             expected_extractors: Mapping[str, dict | None] | None = None,
                             map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """:func:`~synctva_ros.checkpoint.load_checkpoint` followed by :func:`restore_text_top`.

    Raises:
        CheckpointError: see both functions.
    """
    from synctva_ros.checkpoint import load_checkpoint

    model, man = load_checkpoint(directory, expected_extractors, map_location)
    return restore_text_top(model, man, base), man
