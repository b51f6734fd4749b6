"""Per-utterance feature containers and the padded torch batch the model takes.

Every extractor turns one modality of an :class:`~synctva_ros.core.window.UtteranceWindow`
into graph nodes: an ``(N, F)`` float32 matrix plus each node's time, normalised to
[0, 1] over the window (0 = window start, 1 = window end), which is what the
cross-modal graphs align on (paper Sec. 3.3, "temporally aligned nodes").
A modality with no data gives ``None``; the model then masks it out.

These types sit in the lowest layer so that the model and every backend can take a
:class:`Batch` without depending on the feature extractors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

__all__ = ["ModalityFeatures", "TextEncoding", "UtteranceFeatures", "Batch", "collate"]


@dataclass
class ModalityFeatures:
    """Nodes of one modality for one utterance.

    Attributes:
        x: ``(N, F)`` float32 node features, ``N >= 1``.
        t: ``(N,)`` float32 node times in [0, 1] over the window.
        prefix: ``(M, F)`` float32 states of the encoder-input tokens that precede the nodes and are not
            nodes themselves (text only: the dialogue context's word pieces with
            ``features.text_context_states``), keys for the model's fine-tuned text layers; ``None``
            otherwise.
    """

    x: np.ndarray
    t: np.ndarray
    prefix: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.t.shape != (self.x.shape[0],) or self.x.shape[0] == 0:
            raise ValueError(f"ModalityFeatures needs x (N>=1, F) and t (N,), got {self.x.shape}, {self.t.shape}")
        if self.prefix is not None and (self.prefix.ndim != 2 or self.prefix.shape[1] != self.x.shape[1]):
            raise ValueError(f"ModalityFeatures prefix must be (M, {self.x.shape[1]}), got {self.prefix.shape}")


class TextEncoding(NamedTuple):
    """One text's encoding.

    Attributes:
        tokens: ``(N, F)`` float32 node states (the utterance's own word pieces), ``None`` for an empty text.
        sentence: ``(F,)`` float32 L2-normalised sentence embedding of the utterance alone, ``None`` if empty or
            not asked for (``TextEncoder.encode_texts(sentences=False)``).
        prefix: ``(M, F)`` float32 states of the sequence's other tokens (context turns, speaker tag; for
            relative-position encoders such as MPNet also the separators; ``M`` may be 0) when the text encoder's
            ``context_states`` is on and context was given, else ``None``.
    """

    tokens: np.ndarray | None
    sentence: np.ndarray | None
    prefix: np.ndarray | None = None


@dataclass
class UtteranceFeatures:
    """All modalities of one utterance; ``None`` marks an absent modality.

    Attributes:
        text, audio, visual: node features per modality.
        sentence: ``(F_t,)`` pooled sentence embedding of the text (dialogue context), or ``None``.
        label: class index for training/evaluation (-1 when unknown).
        dialogue_id, utterance_index: position in the conversation (for context).
    """

    text: ModalityFeatures | None = None
    audio: ModalityFeatures | None = None
    visual: ModalityFeatures | None = None
    sentence: np.ndarray | None = None
    label: int = -1
    dialogue_id: str = ""
    utterance_index: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """Padded batch of utterances, the model's input.

    For each modality ``m`` in (text, audio, visual):
        ``{m}``: ``(B, N_m, F_m)`` float32, zero-padded;
        ``{m}_mask``: ``(B, N_m)`` bool, True = real node (a row of all False = modality absent);
        ``{m}_time``: ``(B, N_m)`` float32 node times in [0, 1].
    ``context``: ``(B, K, F_t)`` sentence embeddings of the K previous utterances
    (oldest first), ``context_mask``: ``(B, K)`` bool; both ``None`` when context is off.
    ``labels``: ``(B,)`` int64 (-1 unknown).
    ``text_prefix``: ``(B, M, F_t)`` float32, the text's :attr:`ModalityFeatures.prefix` states (dialogue
    context word pieces, keys of the fine-tuned text layers), zero-padded; ``text_prefix_mask``: ``(B, M)``
    bool; both ``None`` when no utterance of the batch has a prefix.
    """

    text: torch.Tensor
    text_mask: torch.Tensor
    text_time: torch.Tensor
    audio: torch.Tensor
    audio_mask: torch.Tensor
    audio_time: torch.Tensor
    visual: torch.Tensor
    visual_mask: torch.Tensor
    visual_time: torch.Tensor
    labels: torch.Tensor
    context: torch.Tensor | None = None
    context_mask: torch.Tensor | None = None
    text_prefix: torch.Tensor | None = None
    text_prefix_mask: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        """Move every tensor to ``device``."""
        kw = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**kw)


def _pad(items: Sequence[ModalityFeatures | None], dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = max([1] + [it.x.shape[0] for it in items if it is not None])
    b = len(items)
    x = torch.zeros(b, n, dim)
    m = torch.zeros(b, n, dtype=torch.bool)
    t = torch.zeros(b, n)
    for i, it in enumerate(items):
        if it is None:
            continue
        k = it.x.shape[0]
        if it.x.shape[1] != dim:
            raise ValueError(f"feature width {it.x.shape[1]} != expected {dim}")
        x[i, :k] = torch.from_numpy(np.ascontiguousarray(it.x, dtype=np.float32))
        m[i, :k] = True
        t[i, :k] = torch.from_numpy(np.ascontiguousarray(it.t, dtype=np.float32))
    return x, m, t


def collate(items: Sequence[UtteranceFeatures], dims: dict[str, int],
            contexts: Sequence[Sequence[np.ndarray]] | None = None, context_turns: int = 0) -> Batch:
    """Pad a list of utterances into a :class:`Batch`.

    Args:
        items: B utterances.
        dims: feature width per modality, e.g. ``{"text": 384, "audio": 25, "visual": 2048}``.
        contexts: for each utterance, the sentence embeddings of its previous utterances
            (oldest first); only the last ``context_turns`` are kept.
        context_turns: K; 0 disables context (``Batch.context`` is ``None``).

    Raises:
        ValueError: a feature width differs from ``dims``.
    """
    text = _pad([u.text for u in items], dims["text"])
    audio = _pad([u.audio for u in items], dims["audio"])
    visual = _pad([u.visual for u in items], dims["visual"])
    labels = torch.tensor([u.label for u in items], dtype=torch.long)
    context = context_mask = None
    if context_turns > 0:
        b = len(items)
        context = torch.zeros(b, context_turns, dims["text"])
        context_mask = torch.zeros(b, context_turns, dtype=torch.bool)
        for i, prev in enumerate(contexts or [[] for _ in items]):
            prev = list(prev)[-context_turns:]
            off = context_turns - len(prev)
            for j, e in enumerate(prev):
                context[i, off + j] = torch.from_numpy(np.asarray(e, dtype=np.float32))
                context_mask[i, off + j] = True
    prefix = prefix_mask = None
    prefixes = [None if u.text is None else u.text.prefix for u in items]
    if any(p is not None for p in prefixes):
        prefix, prefix_mask, _ = _pad([None if p is None else ModalityFeatures(p, np.zeros(p.shape[0], np.float32))
                                       if p.shape[0] else None for p in prefixes], dims["text"])
    return Batch(*text, *audio, *visual, labels, context, context_mask, prefix, prefix_mask)
