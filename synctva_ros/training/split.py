"""The validation split: whole dialogues drawn from the training split, seeded.

Model selection (the best epoch, early stopping, and any setting compared by the lead) must not
see the figures the model is reported on. :func:`split_by_dialogue` therefore holds out a share
of the **training** dialogues as the validation split; the dataset's own dev/valid split becomes a
report split that the model is scored on once, at the end (:mod:`synctva_ros.training.train`).

Cutting by dialogue (never by utterance) keeps the turns of one conversation, its speakers and its
context on one side, as the official MELD/IEMOCAP splits do. The draw is a function of the set of
dialogue ids and the seed only: the ids are sorted, permuted with ``numpy.random.default_rng(seed)``,
and the first ``max(1, round(fraction * D))`` are held out (``D`` dialogues, at least one left to
train on). The held-out ids and their sha256 go into the checkpoint manifest.
"""

from __future__ import annotations

import fnmatch
import hashlib
from typing import Any, Sequence

import numpy as np

from synctva_ros.core.batch import UtteranceFeatures

__all__ = ["split_by_dialogue", "dialogue_ids_sha256"]


def dialogue_ids_sha256(ids: Sequence[str]) -> str:
    """sha256 (hex) of the sorted ids joined by newlines: a short name for a set of dialogues."""
    return hashlib.sha256("\n".join(sorted(str(i) for i in ids)).encode("utf-8")).hexdigest()


def split_by_dialogue(items: Sequence[UtteranceFeatures], fraction: float, seed: int, pattern: str = ""
                      ) -> tuple[list[UtteranceFeatures], list[UtteranceFeatures], dict[str, Any]]:
    """Hold out ``fraction`` of the dialogues of ``items``, or those matching ``pattern``, as a validation split.

    Args:
        items: utterances of the training split (``dialogue_id`` set); order is kept on both sides.
        fraction: share of dialogues held out, in (0, 1) (ignored when ``pattern`` is set).
        seed: seed of the draw (``numpy.random.default_rng``).
        pattern: shell-style pattern over dialogue ids (case-sensitive); '' = the seeded draw.

    Returns:
        ``(train_items, valid_items, info)`` with ``info`` = ``{"valid_fraction", "split_seed",
        "valid_pattern", "valid_dialogues": sorted held-out ids, "valid_dialogues_sha256", "train_dialogue_count",
        "valid_dialogue_count", "train_utterances", "valid_utterances"}`` (JSON-able).

    Raises:
        ValueError: ``fraction`` outside (0, 1), fewer than two dialogues, or a pattern that matches no
            dialogue or every dialogue.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"valid fraction must be in (0, 1), got {fraction}")
    ids = sorted({str(u.dialogue_id) for u in items})
    if len(ids) < 2:
        raise ValueError(f"the training split has {len(ids)} dialogue(s): a validation split by dialogue needs "
                         f"at least 2 (raise training.limit or use more data)")
    if pattern:
        held = {i for i in ids if fnmatch.fnmatchcase(i, pattern)}
        if not 0 < len(held) < len(ids):
            raise ValueError(f"training.valid_dialogues = {pattern!r} matches {len(held)} of the {len(ids)} training "
                             f"dialogues (e.g. {ids[0]!r}): it must hold out at least one and leave at least one")
    else:
        n_valid = min(len(ids) - 1, max(1, int(round(fraction * len(ids)))))
        order = np.random.default_rng(int(seed)).permutation(len(ids))
        held = {ids[i] for i in order[:n_valid]}
    n_valid = len(held)
    train = [u for u in items if str(u.dialogue_id) not in held]
    valid = [u for u in items if str(u.dialogue_id) in held]
    info = {"valid_fraction": float(fraction), "split_seed": int(seed), "valid_pattern": pattern,
            "valid_dialogues": sorted(held),
            "valid_dialogues_sha256": dialogue_ids_sha256(held), "train_dialogue_count": len(ids) - n_valid,
            "valid_dialogue_count": n_valid, "train_utterances": len(train), "valid_utterances": len(valid)}
    return train, valid, info
