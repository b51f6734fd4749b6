"""Valence and arousal of the emotion classes, and their expectation under the model's probabilities.

Source: the NRC Valence, Arousal, and Dominance Lexicon v1.0 (Mohammad, "Obtaining Reliable
Human Ratings of Valence, Arousal, and Dominance for 20,000 English Words", ACL 2018), file
``NRC-VAD-Lexicon.txt``, whose scores lie in [0, 1]. Each class is looked up by the emotion
word that names it and rescaled linearly to [-1, 1] with ``v' = 2 v - 1`` (same for arousal).

Words used (lexicon valence, arousal before rescaling):

=============  ==============  =======  =======
class          lexicon word    V        A
=============  ==============  =======  =======
neutral/neu    neutral         0.469    0.184
joy            joy             0.980    0.824
surprise       surprise        0.875    0.875
anger/ang      anger           0.167    0.865
sadness/sad    sadness         0.052    0.288
disgust        disgust         0.052    0.775
fear           fear            0.073    0.840
hap            happiness       0.960    0.732
exc            excitement      0.896    0.684
fru            frustration     0.060    0.730
=============  ==============  =======  =======

MELD's classes are the words themselves; IEMOCAP's abbreviations are mapped to the category
nouns of Busso et al. (2008): hap = happiness, sad = sadness, neu = neutral, ang = anger,
exc = excitement, fru = frustration. Full-word spellings of those classes are accepted too.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["NRC_VAD", "CLASS_WORDS", "affect_of", "expected_affect"]

#: NRC-VAD v1.0 (valence, arousal) in [0, 1] for the emotion words used.
NRC_VAD: dict[str, tuple[float, float]] = {
    "neutral": (0.469, 0.184),
    "joy": (0.980, 0.824),
    "surprise": (0.875, 0.875),
    "anger": (0.167, 0.865),
    "sadness": (0.052, 0.288),
    "disgust": (0.052, 0.775),
    "fear": (0.073, 0.840),
    "happiness": (0.960, 0.732),
    "excitement": (0.896, 0.684),
    "frustration": (0.060, 0.730),
}

#: Class name (MELD and IEMOCAP spellings, lower case) -> lexicon word.
CLASS_WORDS: dict[str, str] = {
    **{w: w for w in NRC_VAD},
    "neu": "neutral", "hap": "happiness", "happy": "happiness", "sad": "sadness", "ang": "anger",
    "angry": "anger", "exc": "excitement", "excited": "excitement", "fru": "frustration",
    "frustrated": "frustration",
}


def affect_of(class_name: str) -> tuple[float, float]:
    """(valence, arousal) in [-1, 1] of one class name (case-insensitive).

    Raises:
        KeyError: the class name has no entry (the message lists the known names).
    """
    word = CLASS_WORDS.get(class_name.strip().lower())
    if word is None:
        raise KeyError(f"no valence/arousal for class '{class_name}' (known: {sorted(CLASS_WORDS)})")
    v, a = NRC_VAD[word]
    return 2.0 * v - 1.0, 2.0 * a - 1.0


def expected_affect(probabilities: Sequence[float] | np.ndarray, class_names: Sequence[str]) -> tuple[float, float]:
    """Expected (valence, arousal) in [-1, 1] under a class distribution.

    Args:
        probabilities: ``(C,)`` non-negative; always renormalised to sum to 1.
        class_names: ``C`` class names in the same order.

    Raises:
        ValueError: length mismatch, negative or non-finite probabilities, zero total.
        KeyError: a class name without an entry.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if p.shape[0] != len(class_names):
        raise ValueError(f"{p.shape[0]} probabilities for {len(class_names)} classes")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"probabilities must be finite, non-negative and not all zero: {p.tolist()}")
    p = p / p.sum()
    va = np.array([affect_of(c) for c in class_names], dtype=np.float64)
    v, a = (p[:, None] * va).sum(axis=0)
    return float(np.clip(v, -1.0, 1.0)), float(np.clip(a, -1.0, 1.0))
