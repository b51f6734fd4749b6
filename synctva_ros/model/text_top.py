"""The text encoder's top K transformer layers, run inside Sync-TVA on intermediate token states.

The paper (Sync-TVA, arXiv 2507.21395, Sec. 3.1) takes RoBERTa token states as the text
nodes. Fine-tuning the whole encoder is too slow on a robot's CPU and too big to ship, so
only its **top K layers** are fine-tuned: the text extractor produces the hidden states of
layer ``features.text_layer`` (``hidden_states[l]``, 0 = embeddings), and
:class:`TextTopLayers` — a copy of encoder layers ``l .. l+K-1`` — runs on them inside the
model, before MSDE (``ModelConfig.text_top_layers = K``). With ``l + K = L`` (the encoder's
depth) and the pretrained weights, the output is the encoder's last layer, up to the
special-token caveat below.

Special tokens: the extractor drops ``[CLS]``/``[SEP]`` (``<s>``/``</s>``) from the nodes
(:mod:`synctva_ros.features.text`). BERT-style layers lean on them (attention sinks): run on the
word pieces alone, MiniLM's top two layers gave states with a mean cosine of only 0.80 (worst
0.37) to the true last-layer states on 100 MELD utterances. So :class:`TextTopLayers` keeps one
trainable state per special token (``special``, ``(S, F)``), initialised with the mean
layer-``l`` state of that token over calibration texts, and prepends them as always-attended
keys (with absolute positions, the positions are already inside the states, so their place in the
sequence does not matter; MPNet's relative positions: below); their outputs are dropped. At initialisation that
gives a mean cosine of 0.9995 (worst 0.995) to the true states, so the cache and the node contract stay unchanged.

This module holds the layers only. Their weights come from one place, the checkpoint package:
:func:`~synctva_ros.checkpoint.text_top_base.build_text_top` (pretrained layers and calibrated
special states, for training) and :func:`~synctva_ros.checkpoint.text_top_deltas.restore_text_top`
(base encoder + fine-tuned deltas, for inference).

Dialogue context as keys (``spec["context_keys"]``, ``features.text_context_states``): when the text
encoder's input held the previous turns (``features.text_context_turns``), their layer-``l`` states
can be handed in as a **prefix** ``(B, M, F)``. They are prepended like the special states, run through
every layer (so context and utterance attend to each other as in the encoder itself) and dropped at the
end: the fine-tuned layers then see the dialogue, as in CoMPM/EmoBERTa-style fine-tuning, while the
nodes stay the utterance's own word pieces. With ``l = 0`` and ``K = L`` this is the whole encoder
fine-tuned on ``context | utterance`` sequences.

Supported encoders (:data:`LAYER_NAMES`, keyed by the Hugging Face ``model_type``): post-LayerNorm
layers with BERT-style naming and absolute positions (BERT, RoBERTa, MiniLM, XLM-R:
``encoder.layer.{i}.attention.self.query`` ...; any other ``model_type`` is read under these names),
and **MPNet** (all-mpnet-base-v2; Song et al., NeurIPS 2020): the same layer, named
``encoder.layer.{i}.attention.attn.q`` ..., plus a T5-style relative position bias shared by all layers
(:mod:`synctva_ros.model.relative_position`). For MPNet the bias table (``encoder.relative_attention_bias``,
``(32, heads)``) is copied from the base encoder into a **frozen** buffer: it is restored from the base
at inference and never stored as a delta. Why frozen: it is 384 numbers shared with the frozen layers
below ``l`` (which keep the pretrained table in the extractor), the fine-tuned layers' own query/key
weights already adapt how positions are used, and the delta format of the checkpoint stays that of
BERT-style layers (layer tensors plus ``special``). The tokens get back the positions they had in the
encoder's input: ``<s>`` at 0, the prefix (context, ``</s></s>``, speaker tag) next, the utterance's word
pieces after it, ``</s>`` right after them (:func:`~synctva_ros.model.relative_position.sequence_positions`).

Fidelity with MPNet (all-mpnet-base-v2, pretrained weights, ``special`` calibrated on the first 256 MELD
train transcripts): cosine of the outputs for the utterance's word pieces to the encoder's own last-layer
states, mean / worst over the 1,097 word pieces of 100 MELD dev utterances (every 11th); context = the 4
previous turns, at most 96 word pieces, as :class:`~synctva_ros.features.text.TextEncoder` builds it:

==========  =================  ====================  ===================  ==================
K (l)       utterance alone    context, as handed    context without the  bias zeroed
                               over (with ``</s>``   separators (earlier  (control, utterance
                               ``</s>``)             prefix rule)         alone)
==========  =================  ====================  ===================  ==================
1 (11)      0.99984 / 0.9980   0.99998 / 0.9994      0.99904 / 0.9910     0.956 / 0.651
2 (10)      0.99998 / 0.9998   0.99999 / 0.9997      0.99830 / 0.9851     0.940 / 0.610
4 (8)       0.99811 / 0.9884   0.99959 / 0.9959      0.99665 / 0.9738     0.909 / 0.542
==========  =================  ====================  ===================  ==================

The error left is the calibrated special states' (mean ``<s>``/``</s>`` states stand in for each text's own):
with a text's own special states the output equals the encoder's to 1e-5 (``test/model/test_relative_position.py``,
tiny random MPNet). The nodes of a context sequence without their prefix give 0.77-0.88 (not in the table): the
layers must see the context (``context_keys``) to reproduce the encoder. A regression test on the shipped MELD sample:
``test/model/test_text_top_mpnet.py`` (K = 2; skipped when the weights are not installed).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from synctva_ros.model.relative_position import relative_position_bucket, sequence_positions

__all__ = ["TextTopLayer", "TextTopLayers", "HF_LAYER_NAMES", "MPNET_LAYER_NAMES", "LAYER_NAMES",
           "RELATIVE_BIAS_NAMES", "layer_names"]

#: Our parameter name -> Hugging Face BERT-layer suffix (``encoder.layer.{i}.`` + suffix): the names the
#: checkpoint package reads the pretrained layers under and stores the fine-tuned deltas under.
HF_LAYER_NAMES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "attn_norm": "attention.output.LayerNorm",
    "inter": "intermediate.dense",
    "out": "output.dense",
    "out_norm": "output.LayerNorm",
}
#: The same for Hugging Face ``MPNetLayer`` (``MPNetAttention.attn`` holds q, k, v, o; its LayerNorm sits on
#: ``MPNetAttention`` itself).
MPNET_LAYER_NAMES = {
    **HF_LAYER_NAMES,
    "query": "attention.attn.q",
    "key": "attention.attn.k",
    "value": "attention.attn.v",
    "attn_out": "attention.attn.o",
    "attn_norm": "attention.LayerNorm",
}
#: Layer naming by Hugging Face ``model_type``; a type not listed is read under :data:`HF_LAYER_NAMES`.
LAYER_NAMES = {"bert": HF_LAYER_NAMES, "roberta": HF_LAYER_NAMES, "xlm-roberta": HF_LAYER_NAMES,
               "mpnet": MPNET_LAYER_NAMES}
#: Encoder-level tensor of the shared relative position bias table, by ``model_type`` (only those that have one).
RELATIVE_BIAS_NAMES = {"mpnet": "encoder.relative_attention_bias.weight"}


def layer_names(model_type: str | None) -> dict[str, str]:
    """Our parameter name -> Hugging Face suffix for ``model_type`` (:data:`HF_LAYER_NAMES` when unlisted)."""
    return LAYER_NAMES.get(str(model_type or "bert"), HF_LAYER_NAMES)


def _hf_key(names: Mapping[str, str], index: int, param: str) -> str:
    """Base-encoder name of ``param`` (``<module>.<leaf>`` of a :class:`TextTopLayer`) in encoder layer ``index``."""
    mod, _, leaf = param.rpartition(".")
    return f"encoder.layer.{index}.{names[mod]}.{leaf}"


def _base_tensor(state: Mapping[str, Tensor], key: str, shape: Any) -> Tensor:
    """``state[key]`` checked against ``shape``. Raises KeyError (missing) or ValueError (shape differs)."""
    if key not in state:
        raise KeyError(f"base encoder has no tensor '{key}'")
    if tuple(state[key].shape) != tuple(shape):
        raise ValueError(f"'{key}' has shape {tuple(state[key].shape)}, expected {tuple(shape)}")
    return state[key]


_ACTS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "relu": None}


class TextTopLayer(nn.Module):
    """One post-LayerNorm BERT encoder layer (Devlin et al. 2019; Hugging Face ``BertLayer``), mask-aware.

    ``h = LN(x + Drop(W_o MHA(x)))``, ``y = LN(h + Drop(W_2 act(W_1 h)))`` with key padding
    masked out of the attention. Hugging Face ``MPNetLayer`` is the same computation; its relative
    position bias comes in as ``bias`` (added to the scaled scores before the softmax).

    Args:
        hidden: width ``F``; heads: attention heads (``F % heads == 0``); intermediate: FFN width;
        act: ``gelu`` (erf), ``gelu_new``/``gelu_pytorch_tanh``/``gelu_fast`` (tanh) or ``relu``;
        eps: LayerNorm epsilon; dropout: hidden and attention dropout (training only).

    Shapes:
        ``x`` ``(B, N, F)``, ``mask`` ``(B, N)`` bool (True = token), optional ``bias`` ``(B, heads, N, N)``
        -> ``(B, N, F)``.

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

    def forward(self, x: Tensor, mask: Tensor, bias: Tensor | None = None) -> Tensor:
        b, n, f = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if bias is not None:
            scores = scores + bias.to(scores.dtype)
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
            "text_layer", "special_tokens"[, "context_keys", "model_type", "relative_buckets",
            "relative_max_distance"]}`` where ``layers`` are the base encoder's 0-based layer
            indices (``l .. l+K-1``), ``text_layer`` is ``l`` and ``special_tokens`` is ``S``, the
            number of special-token states prepended (see the module docstring); ``model_type`` picks
            the Hugging Face names (:func:`layer_names`; absent = BERT-style) and ``relative_buckets`` > 0
            (MPNet: 32, with ``relative_max_distance`` 128) adds the shared relative position bias (absent
            or 0 = absolute positions, nothing added); see
            :func:`~synctva_ros.checkpoint.text_top_base.load_base_layers`.
        base: identity of the base encoder (``name``, ``weights_sha256``, ``model_type``,
            ``prefix``); ``None`` for a randomly initialised stack (tests only).

    The weights start random (the relative bias table at zero); :meth:`load_hf_state` fills them from
    tensors under the base encoder's own names (the checkpoint package reads those; this module reads no
    files). The bias table is a non-persistent buffer (``rel_bias``, ``(buckets, heads)``): never trained,
    never in a state dict or a delta, always loaded from the base.

    Shapes:
        ``x`` ``(B, N, F)``, ``mask`` ``(B, N)`` bool -> ``(B, N, F)``; padded positions
        (mask False) are zeroed on input, so NaN padding cannot leak, and their outputs are
        meaningless (the model masks them). Optional ``prefix`` ``(B, M, F)`` with ``prefix_mask``
        ``(B, M)`` bool: context states attended by every layer, outputs dropped (module docstring);
        ignored unless ``spec["context_keys"]`` is true, so a model trained without them never sees them.
        With a relative position bias, the real prefix states and nodes must be in sequence order (padding
        anywhere): their positions are counted from the masks
        (:func:`~synctva_ros.model.relative_position.sequence_positions`).
    """

    def __init__(self, spec: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.spec = {k: spec[k] for k in ("hidden", "heads", "intermediate", "act", "eps", "dropout", "layers",
                                          "text_layer")}
        self.spec["layers"] = [int(i) for i in self.spec["layers"]]
        self.spec["special_tokens"] = int(spec.get("special_tokens", 0))
        self.spec["context_keys"] = bool(spec.get("context_keys", False))
        buckets = int(spec.get("relative_buckets", 0) or 0)
        if spec.get("model_type") not in (None, "bert"):  # only when not BERT: BERT specs stay as they were
            self.spec["model_type"] = str(spec["model_type"])
        if buckets:
            self.spec["relative_buckets"] = buckets
            self.spec["relative_max_distance"] = int(spec.get("relative_max_distance", 128))
        self.register_buffer("rel_bias", torch.zeros(buckets, int(spec["heads"])), persistent=False)
        self.base = dict(base) if base is not None else None
        self.special = nn.Parameter(torch.zeros(self.spec["special_tokens"], int(spec["hidden"])))
        self.layers = nn.ModuleList(
            TextTopLayer(int(spec["hidden"]), int(spec["heads"]), int(spec["intermediate"]), str(spec["act"]),
                         float(spec["eps"]), float(spec["dropout"])) for _ in self.spec["layers"])

    @property
    def dim(self) -> int:
        """Width ``F`` of the token states."""
        return int(self.spec["hidden"])

    def forward(self, x: Tensor, mask: Tensor, prefix: Tensor | None = None,
                prefix_mask: Tensor | None = None) -> Tensor:
        mask = mask.to(torch.bool)
        x = torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x))
        n_special = int(self.spec["special_tokens"])
        s, pm = n_special, None
        node_mask = mask
        if prefix is not None and self.spec["context_keys"]:
            pm = (torch.ones(prefix.shape[:2], dtype=torch.bool, device=prefix.device) if prefix_mask is None
                  else prefix_mask.to(torch.bool))
            prefix = torch.where(pm.unsqueeze(-1), prefix.to(x.dtype), torch.zeros_like(prefix, dtype=x.dtype))
            x = torch.cat([prefix, x], dim=1)
            mask = torch.cat([pm, mask], dim=1)
            s += prefix.shape[1]
        bias = self._position_bias(node_mask, pm)
        if n_special:
            b = x.shape[0]
            x = torch.cat([self.special.to(x.dtype).unsqueeze(0).expand(b, -1, -1), x], dim=1)
            mask = torch.cat([torch.ones(b, n_special, dtype=torch.bool, device=mask.device), mask], dim=1)
        for layer in self.layers:
            x = layer(x, mask, bias)
        return x[:, s:]

    def _position_bias(self, node_mask: Tensor, prefix_mask: Tensor | None) -> Tensor | None:
        """``(B, heads, T, T)`` relative position bias over ``[special | prefix | nodes]``, ``None`` if absolute."""
        buckets = int(self.spec.get("relative_buckets", 0))
        if not buckets:
            return None
        pos = sequence_positions(node_mask, prefix_mask, int(self.spec["special_tokens"]))
        rel = relative_position_bucket(pos[:, None, :] - pos[:, :, None], buckets,
                                       int(self.spec["relative_max_distance"]))
        return self.rel_bias[rel].permute(0, 3, 1, 2)

    def hf_state(self) -> dict[str, Tensor]:
        """The layers' weights under the base encoder's names.

        Returns:
            ``{"encoder.layer.{i}.<hf suffix>.{weight,bias}": Tensor}`` (suffixes from
            :func:`layer_names` of ``spec["model_type"]``; without the base's own prefix such as ``bert.``):
            the trained tensors only (the frozen relative bias table is :meth:`frozen_hf_keys`).
        """
        names = layer_names(self.spec.get("model_type"))
        return {_hf_key(names, i, name): t for layer, i in zip(self.layers, self.spec["layers"])
                for name, t in layer.state_dict().items()}

    def frozen_hf_keys(self) -> list[str]:
        """Base-encoder tensors :meth:`load_hf_state` reads besides :meth:`hf_state`'s (MPNet: the bias table)."""
        if not int(self.spec.get("relative_buckets", 0)):
            return []
        return [RELATIVE_BIAS_NAMES.get(str(self.spec.get("model_type")), RELATIVE_BIAS_NAMES["mpnet"])]

    def load_hf_state(self, state: Mapping[str, Tensor]) -> None:
        """Inverse of :meth:`hf_state`: copy ``state`` into the layers (cast to their dtype).

        Args:
            state: ``{"encoder.layer.{i}.<hf suffix>.{weight,bias}": Tensor}`` holding at least
                every tensor of the layers in ``spec["layers"]`` and the :meth:`frozen_hf_keys` (the
                relative bias table, ``(buckets, heads)``); other entries are ignored.

        Raises:
            KeyError: a tensor is missing; ValueError: a shape differs.
        """
        names = layer_names(self.spec.get("model_type"))
        for key in self.frozen_hf_keys():
            self.rel_bias.copy_(_base_tensor(state, key, self.rel_bias.shape).to(self.rel_bias.dtype))
        for layer, i in zip(self.layers, self.spec["layers"]):
            layer.load_state_dict({name: _base_tensor(state, _hf_key(names, i, name), t.shape).to(t.dtype)
                                   for name, t in layer.state_dict().items()})
