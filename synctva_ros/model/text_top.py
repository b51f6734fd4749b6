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
keys (positions are already inside the states, so their place in the sequence does not
matter); their outputs are dropped. At initialisation that gives a mean cosine of 0.9995
(worst 0.995) to the true states, so the cache and the node contract stay unchanged.

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

Supported encoders: BERT-style layer naming (BERT, RoBERTa, MiniLM, XLM-R:
``encoder.layer.{i}.attention.self.query`` ...), post-LayerNorm, absolute positions.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["TextTopLayer", "TextTopLayers", "HF_LAYER_NAMES"]

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
            "text_layer", "special_tokens"[, "context_keys"]}`` where ``layers`` are the base encoder's 0-based layer
            indices (``l .. l+K-1``), ``text_layer`` is ``l`` and ``special_tokens`` is ``S``, the
            number of special-token states prepended (see the module docstring); see
            :func:`~synctva_ros.checkpoint.text_top_base.load_base_layers`.
        base: identity of the base encoder (``name``, ``weights_sha256``, ``model_type``,
            ``prefix``); ``None`` for a randomly initialised stack (tests only).

    The weights start random; :meth:`load_hf_state` fills them from tensors under the base
    encoder's own names (the checkpoint package reads those; this module reads no files).

    Shapes:
        ``x`` ``(B, N, F)``, ``mask`` ``(B, N)`` bool -> ``(B, N, F)``; padded positions
        (mask False) are zeroed on input, so NaN padding cannot leak, and their outputs are
        meaningless (the model masks them). Optional ``prefix`` ``(B, M, F)`` with ``prefix_mask``
        ``(B, M)`` bool: context states attended by every layer, outputs dropped (module docstring);
        ignored unless ``spec["context_keys"]`` is true, so a model trained without them never sees them.
    """

    def __init__(self, spec: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.spec = {k: spec[k] for k in ("hidden", "heads", "intermediate", "act", "eps", "dropout", "layers",
                                          "text_layer")}
        self.spec["layers"] = [int(i) for i in self.spec["layers"]]
        self.spec["special_tokens"] = int(spec.get("special_tokens", 0))
        self.spec["context_keys"] = bool(spec.get("context_keys", False))
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
        s = n_special
        if prefix is not None and self.spec["context_keys"]:
            pm = (torch.ones(prefix.shape[:2], dtype=torch.bool, device=prefix.device) if prefix_mask is None
                  else prefix_mask.to(torch.bool))
            prefix = torch.where(pm.unsqueeze(-1), prefix.to(x.dtype), torch.zeros_like(prefix, dtype=x.dtype))
            x = torch.cat([prefix, x], dim=1)
            mask = torch.cat([pm, mask], dim=1)
            s += prefix.shape[1]
        if n_special:
            b = x.shape[0]
            x = torch.cat([self.special.to(x.dtype).unsqueeze(0).expand(b, -1, -1), x], dim=1)
            mask = torch.cat([torch.ones(b, n_special, dtype=torch.bool, device=mask.device), mask], dim=1)
        for layer in self.layers:
            x = layer(x, mask)
        return x[:, s:]

    def hf_state(self) -> dict[str, Tensor]:
        """The layers' weights under the base encoder's names.

        Returns:
            ``{"encoder.layer.{i}.<hf suffix>.{weight,bias}": Tensor}`` (suffixes from
            :data:`HF_LAYER_NAMES`; without the base's own prefix such as ``bert.``).
        """
        out: dict[str, Tensor] = {}
        for layer, i in zip(self.layers, self.spec["layers"]):
            for name, t in layer.state_dict().items():
                mod, _, leaf = name.rpartition(".")
                out[f"encoder.layer.{i}.{HF_LAYER_NAMES[mod]}.{leaf}"] = t
        return out

    def load_hf_state(self, state: Mapping[str, Tensor]) -> None:
        """Inverse of :meth:`hf_state`: copy ``state`` into the layers (cast to their dtype).

        Args:
            state: ``{"encoder.layer.{i}.<hf suffix>.{weight,bias}": Tensor}`` holding at least
                every tensor of the layers in ``spec["layers"]``; other entries are ignored.

        Raises:
            KeyError: a tensor is missing; ValueError: a shape differs.
        """
        for layer, i in zip(self.layers, self.spec["layers"]):
            own = layer.state_dict()
            new = {}
            for name, t in own.items():
                mod, _, leaf = name.rpartition(".")
                key = f"encoder.layer.{i}.{HF_LAYER_NAMES[mod]}.{leaf}"
                if key not in state:
                    raise KeyError(f"base encoder has no tensor '{key}'")
                src = state[key]
                if tuple(src.shape) != tuple(t.shape):
                    raise ValueError(f"'{key}' has shape {tuple(src.shape)}, expected {tuple(t.shape)}")
                new[name] = src.to(t.dtype)
            layer.load_state_dict(new)
