"""Batches for training: cached utterances + dialogue context -> :class:`~synctva_ros.core.batch.Batch`."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from synctva_ros.core.batch import Batch, UtteranceFeatures, collate

__all__ = ["dialogue_contexts", "UtteranceDataset", "make_loader", "class_counts"]


def dialogue_contexts(items: Sequence[UtteranceFeatures], turns: int) -> list[list[np.ndarray]]:
    """For each utterance, the sentence embeddings of up to ``turns`` previous utterances of its dialogue.

    Order is oldest first; only utterances with a smaller ``utterance_index`` in the same
    ``dialogue_id`` count (what a robot has heard before), and those without a sentence
    embedding are skipped. ``turns = 0`` gives empty lists.

    Args:
        items: cached utterances (``dialogue_id``, ``utterance_index``, ``sentence``).
        turns: K, the most previous turns per utterance.

    Returns:
        One list per item, in ``items`` order, of at most ``turns`` sentence embeddings ``(F,)``.
    """
    out: list[list[np.ndarray]] = [[] for _ in items]
    if turns <= 0:
        return out
    by_dialogue: dict[str, list[int]] = {}
    for i, u in enumerate(items):
        by_dialogue.setdefault(u.dialogue_id, []).append(i)
    for idx in by_dialogue.values():
        idx.sort(key=lambda i: items[i].utterance_index)
        for pos, i in enumerate(idx):
            prev = [items[j].sentence for j in idx[:pos] if items[j].sentence is not None]
            out[i] = prev[-turns:]
    return out


class UtteranceDataset(torch.utils.data.Dataset):
    """Index dataset over cached utterances; :meth:`collate` builds the padded :class:`Batch`.

    Args:
        items: utterances (labels index the model's class names).
        dims: feature width per modality (the model's ``dims``).
        context_turns: K previous sentence embeddings per utterance (0 = off).
        active: modalities to feed; inactive ones are passed as absent (``None``).
    """

    def __init__(self, items: Sequence[UtteranceFeatures], dims: dict[str, int], context_turns: int = 0,
                 active: dict[str, bool] | None = None) -> None:
        self.items = list(items)
        self.dims = dict(dims)
        self.context_turns = int(context_turns)
        self.active = dict(active or {"text": True, "audio": True, "visual": True})
        self.contexts = dialogue_contexts(self.items, self.context_turns)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> int:
        return i

    def text_lengths(self) -> list[int]:
        """Per utterance, the text tokens the fine-tuned layers run over: nodes plus prefix (context) states.

        Returns:
            N token counts (``N_t + M``, :class:`~synctva_ros.core.batch.ModalityFeatures` ``x`` and ``prefix``);
            an utterance without text counts 0. These are the lengths :func:`make_loader` groups by.
        """
        return [0 if u.text is None else len(u.text.x) + (0 if u.text.prefix is None else len(u.text.prefix))
                for u in self.items]

    def _view(self, u: UtteranceFeatures) -> UtteranceFeatures:
        if all(self.active.get(m, True) or getattr(u, m) is None for m in ("text", "audio", "visual")):
            return u
        return UtteranceFeatures(text=u.text if self.active.get("text", True) else None,
                                 audio=u.audio if self.active.get("audio", True) else None,
                                 visual=u.visual if self.active.get("visual", True) else None,
                                 sentence=u.sentence, label=u.label, dialogue_id=u.dialogue_id,
                                 utterance_index=u.utterance_index, meta=u.meta)

    def collate(self, indices: Sequence[int]) -> Batch:
        """Batch of the utterances at ``indices`` (shapes in :class:`~synctva_ros.core.batch.Batch`)."""
        return collate([self._view(self.items[i]) for i in indices], self.dims,
                       [self.contexts[i] for i in indices] if self.context_turns else None, self.context_turns)


def make_loader(ds: UtteranceDataset, batch_size: int, shuffle: bool, seed: int = 0,
                group_by_length: bool = False) -> torch.utils.data.DataLoader:
    """Single-process DataLoader of batches (:class:`~synctva_ros.core.batch.Batch`) over ``ds``.

    Args:
        ds: the dataset (its :meth:`UtteranceDataset.collate` builds the batches).
        batch_size: utterances per batch (B).
        shuffle: random order; then the order is a function of ``seed`` only (deterministic).
        seed: seed of the shuffling generator.
        group_by_length: with ``shuffle``, batches of similar text length (:meth:`UtteranceDataset.text_lengths`):
            ``transformers``' ``LengthGroupedSampler`` (``Trainer(group_by_length=True)``) shuffles, cuts the order
            into mega-batches of up to 50 batches and sorts each by length, so a batch pads to little more than
            its own utterances. Every utterance still comes once per epoch; only the batches' make-up changes.
    """
    gen = torch.Generator().manual_seed(int(seed)) if shuffle else None
    sampler = None
    if shuffle and group_by_length:
        from synctva_ros.features.torchvision_compat import ensure_torchvision

        ensure_torchvision()  # transformers imports torchvision
        from transformers.trainer_pt_utils import LengthGroupedSampler  # deferred: a heavy import, training only

        sampler = LengthGroupedSampler(batch_size, lengths=ds.text_lengths(), generator=gen)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                                       generator=gen, collate_fn=ds.collate, num_workers=0)


def class_counts(items: Sequence[UtteranceFeatures], n_classes: int) -> list[int]:
    """Utterances per class index ``[0, n_classes)`` (labels < 0 ignored)."""
    counts = [0] * n_classes
    for u in items:
        if 0 <= u.label < n_classes:
            counts[u.label] += 1
    return counts
