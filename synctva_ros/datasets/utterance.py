"""One labelled utterance of a conversation dataset (MELD, IEMOCAP): text, speaker, label, timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

__all__ = ["Utterance", "group_dialogues", "label_counts"]


@dataclass(frozen=True)
class Utterance:
    """A dataset utterance.

    Attributes:
        dataset: ``"meld"`` or ``"iemocap"``.
        split: split name as the dataset spells it (``train``, ``dev``, ``valid``).
        dialogue_id: conversation id (string, e.g. ``"0"`` or ``"Ses01F_impro01"``).
        utterance_index: position in the dialogue, 0-based.
        utterance_id: unique id within the split (``"<dialogue_id>_<utterance_index>"``).
        speaker: speaker name (MELD) or ``"M"``/``"F"`` (IEMOCAP).
        text: transcript (UTF-8, typographic quotes kept).
        label: emotion class name as the dataset spells it.
        start_s, end_s: start/end in seconds within the episode (MELD); ``nan`` when unknown.
        meta: other columns (sentiment, season, episode, ...).
    """

    dataset: str
    split: str
    dialogue_id: str
    utterance_index: int
    utterance_id: str
    speaker: str
    text: str
    label: str
    start_s: float = float("nan")
    end_s: float = float("nan")
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def duration_s(self) -> float:
        """``end_s - start_s`` in seconds (``nan`` when unknown)."""
        return self.end_s - self.start_s


def group_dialogues(utterances: Iterable[Utterance]) -> dict[str, list[Utterance]]:
    """``{dialogue_id: utterances sorted by utterance_index}``, dialogues in first-seen order."""
    out: dict[str, list[Utterance]] = {}
    for u in utterances:
        out.setdefault(u.dialogue_id, []).append(u)
    for d in out.values():
        d.sort(key=lambda u: u.utterance_index)
    return out


def label_counts(utterances: Iterable[Utterance], class_names: Sequence[str] | None = None) -> dict[str, int]:
    """Utterances per label (in ``class_names`` order when given, zeros included)."""
    counts: dict[str, int] = {c: 0 for c in (class_names or [])}
    for u in utterances:
        counts[u.label] = counts.get(u.label, 0) + 1
    return counts
