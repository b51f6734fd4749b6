r"""Class maps: an expert's classes onto a checkpoint's classes, as a row-stochastic matrix.

A map is a ``(C_src, C_dst)`` non-negative matrix :math:`M` whose rows sum to 1, read as
:math:`M_{sd} = p(d \mid s)`. It is applied to an expert's *probabilities* (after its temperature):
:math:`p(d \mid x) = \sum_s p(s \mid x)\, M_{sd}`, then the log is taken for the product of experts
(:mod:`synctva_ros.model.experts`). This assumes the destination class depends on the input only through the
source class, the usual assumption when relabelling a classifier's output.

Maps (:data:`CLASS_MAPS`, names ``"<src>-><dst>"``):

``face7->meld7``
    The facial-expression expert's seven FER2013 classes (:data:`FACE7`, fer's order) onto MELD's seven
    (:data:`MELD7`), one to one: angry -> anger, disgust -> disgust, fear -> fear, happy -> joy, sad -> sadness,
    surprise -> surprise, neutral -> neutral. A permutation matrix.
``face7->iemocap6``
    Onto IEMOCAP's six classes (:data:`IEMOCAP6`: hap, sad, neu, ang, exc, fru), by Bayes' rule from a stated
    expression model :math:`p(s \mid d)` (:data:`FACE_GIVEN_IEMOCAP`) and the IEMOCAP class prior
    :math:`\pi` (:data:`IEMOCAP6_COUNTS`): :math:`M_{sd} \propto p(s \mid d)\, \pi_d` (see :func:`bayes_map`).
    The expression model, and what follows from it:

    * hap and exc both show a happy face (the face does not tell calm joy from excitement; arousal is in the
      voice), so happy's mass splits between them in proportion to their prior, 648 : 1041 (0.384 / 0.616):
      after the product of experts divides by the prior, the face adds no evidence between hap and exc.
    * sad -> a sad face, neu -> a neutral face, ang -> an angry face.
    * fru (frustration, "low-intensity anger" with resignation) is assumed to show an angry face half of the
      time and a disgusted or a sad face a quarter of the time each. So angry splits between ang and fru as
      1103 : 0.5 x 1849 (0.544 / 0.456), disgust goes wholly to fru (no other IEMOCAP class shows it), and sad
      splits between sad and fru as 1084 : 0.25 x 1849 (0.701 / 0.299).
    * fear and surprise: no IEMOCAP six-class label shows them (IEMOCAP's fea and sur utterances are dropped
      from the six-class set), so their mass is spread over the six classes in proportion to the prior. In
      the product of experts that is no evidence at all: a face judged fearful or surprised leaves the
      other experts' decision as it is.
``meld7->iemocap6``
    ``face7->iemocap6`` with its rows reordered to MELD's class order: the map to use on the
    :class:`~synctva_ros.features.faces.experts.VisualExpert`'s output, which is already in MELD's order.

The class orders are repeated here because ``model/`` sits below ``features/`` and ``datasets/``;
``test/model/test_class_maps.py`` checks them against ``FER_CLASSES``, ``MELD_CLASSES`` and ``IEMOCAP_CLASSES``.

Sources: the IEMOCAP six-class counts (7,433 utterances, sessions 1-5) are those of Busso et al. (2008) as
used by Majumder et al., "DialogueRNN" (AAAI 2019) and later work; the relabelling rule is Bayes' rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["FACE7", "MELD7", "IEMOCAP6", "IEMOCAP6_COUNTS", "FACE_GIVEN_IEMOCAP", "FACE_TO_MELD", "ClassMap",
           "CLASS_MAPS", "bayes_map", "permutation_map", "get_class_map", "apply_class_map", "map_log_probs"]

#: The face expert's classes in fer's (FER2013) order (``features.faces.expression.FER_CLASSES``).
FACE7: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: MELD's classes (``datasets.meld.MELD_CLASSES``).
MELD7: tuple[str, ...] = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
#: IEMOCAP's six classes (``datasets.iemocap.IEMOCAP_CLASSES``).
IEMOCAP6: tuple[str, ...] = ("hap", "sad", "neu", "ang", "exc", "fru")
#: Utterances per IEMOCAP class in the six-class set (sessions 1-5), the prior of ``face7->iemocap6``.
IEMOCAP6_COUNTS: dict[str, int] = {"hap": 648, "sad": 1084, "neu": 1708, "ang": 1103, "exc": 1041, "fru": 1849}
#: Face class -> MELD class, one to one.
FACE_TO_MELD: dict[str, str] = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "joy",
                                "sad": "sadness", "surprise": "surprise", "neutral": "neutral"}
#: The stated expression model p(face class | IEMOCAP class) behind ``face7->iemocap6`` (each row sums to 1).
FACE_GIVEN_IEMOCAP: dict[str, dict[str, float]] = {
    "hap": {"happy": 1.0}, "exc": {"happy": 1.0}, "sad": {"sad": 1.0}, "neu": {"neutral": 1.0},
    "ang": {"angry": 1.0}, "fru": {"angry": 0.5, "disgust": 0.25, "sad": 0.25}}


@dataclass(frozen=True)
class ClassMap:
    """A named class map.

    Attributes:
        name: ``"<src>-><dst>"``.
        src, dst: class names of the rows and the columns.
        matrix: ``(len(src), len(dst))`` float64, non-negative, rows summing to 1.
    """

    name: str
    src: tuple[str, ...]
    dst: tuple[str, ...]
    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, np.float64)
        if m.shape != (len(self.src), len(self.dst)):
            raise ValueError(f"class map {self.name}: matrix {m.shape} != ({len(self.src)}, {len(self.dst)})")
        if not np.all(np.isfinite(m)) or (m < 0).any() or not np.allclose(m.sum(1), 1.0, atol=1e-9):
            raise ValueError(f"class map {self.name}: entries must be finite, >= 0, rows summing to 1")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)


def permutation_map(src: Sequence[str], dst: Sequence[str], names: Mapping[str, str]) -> np.ndarray:
    """The 0/1 matrix of a one-to-one renaming.

    Args:
        src, dst: class orders; names: source name -> destination name (a bijection between them).

    Returns:
        ``(len(src), len(dst))`` permutation matrix.

    Raises:
        ValueError: not a bijection.
    """
    if sorted(names[s] for s in src) != sorted(dst) or len(src) != len(dst):
        raise ValueError(f"{names} is not a bijection from {tuple(src)} to {tuple(dst)}")
    m = np.zeros((len(src), len(dst)))
    for i, s in enumerate(src):
        m[i, list(dst).index(names[s])] = 1.0
    return m


def bayes_map(src: Sequence[str], dst: Sequence[str], src_given_dst: Mapping[str, Mapping[str, float]],
              prior: Sequence[float]) -> np.ndarray:
    r"""A class map by Bayes' rule: :math:`M_{sd} = p(s \mid d)\, \pi_d / \sum_{d'} p(s \mid d')\, \pi_{d'}`.

    A source class that no destination class produces (all :math:`p(s \mid d) = 0`) gets the prior as its
    row: it carries no evidence about the destination class.

    Args:
        src, dst: class orders.
        src_given_dst: ``{dst class: {src class: p(src | dst)}}``; missing entries are 0.
        prior: ``(len(dst),)`` destination prior (normalised here).

    Returns:
        ``(len(src), len(dst))`` row-stochastic matrix.

    Raises:
        ValueError: unknown class name, negative probability or prior, prior of the wrong length or zero sum.
    """
    pi = np.asarray(prior, np.float64)
    if pi.shape != (len(dst),) or (pi < 0).any() or not pi.sum() > 0:
        raise ValueError(f"prior must be {len(dst)} non-negative numbers with a positive sum, got {prior}")
    pi = pi / pi.sum()
    lik = np.zeros((len(src), len(dst)))
    for d, row in src_given_dst.items():
        for s, p in row.items():
            if d not in dst or s not in src or p < 0:
                raise ValueError(f"bad entry p({s!r} | {d!r}) = {p}")
            lik[list(src).index(s), list(dst).index(d)] = p
    joint = lik * pi[None, :]
    mass = joint.sum(1, keepdims=True)
    return np.where(mass > 0, joint / np.where(mass > 0, mass, 1.0), pi[None, :])


def _builtin() -> dict[str, ClassMap]:
    prior = [IEMOCAP6_COUNTS[c] for c in IEMOCAP6]
    f2i = bayes_map(FACE7, IEMOCAP6, FACE_GIVEN_IEMOCAP, prior)
    meld_rows = [FACE7.index(next(f for f, m in FACE_TO_MELD.items() if m == c)) for c in MELD7]
    maps = [ClassMap("face7->meld7", FACE7, MELD7, permutation_map(FACE7, MELD7, FACE_TO_MELD)),
            ClassMap("face7->iemocap6", FACE7, IEMOCAP6, f2i),
            ClassMap("meld7->iemocap6", MELD7, IEMOCAP6, f2i[meld_rows])]
    return {m.name: m for m in maps}


#: The built-in maps by name.
CLASS_MAPS: dict[str, ClassMap] = _builtin()


def get_class_map(name: str) -> ClassMap:
    """The built-in map ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if name not in CLASS_MAPS:
        raise KeyError(f"unknown class map {name!r} (known: {sorted(CLASS_MAPS)})")
    return CLASS_MAPS[name]


def _checked(x: np.ndarray, class_map: ClassMap | np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x as float64, the map's matrix)``; ValueError when ``x``'s last axis is not the map's ``C_src``."""
    m = class_map.matrix if isinstance(class_map, ClassMap) else np.asarray(class_map, np.float64)
    x = np.asarray(x, np.float64)
    if x.shape[-1] != m.shape[0]:
        raise ValueError(f"{what} over {x.shape[-1]} classes, class map expects {m.shape[0]}")
    return x, m


def apply_class_map(probs: np.ndarray, class_map: ClassMap | np.ndarray) -> np.ndarray:
    """Probabilities over the source classes -> probabilities over the destination classes.

    Args:
        probs: ``(..., C_src)`` probabilities.
        class_map: a :class:`ClassMap` or a ``(C_src, C_dst)`` row-stochastic matrix.

    Returns:
        ``(..., C_dst)`` float64 (rows still sum to 1).

    Raises:
        ValueError: the last axis is not ``C_src``.
    """
    p, m = _checked(probs, class_map, "probabilities")
    return p @ m


def map_log_probs(log_probs: np.ndarray, class_map: ClassMap | np.ndarray) -> np.ndarray:
    """:func:`apply_class_map` in log space: ``log(exp(log_probs) @ M)``, computed stably (log-sum-exp).

    Shapes:
        ``(..., C_src)`` -> ``(..., C_dst)``; a destination class no source class reaches gets ``-inf``.

    Raises:
        ValueError: the last axis is not ``C_src``.
    """
    lp, m = _checked(log_probs, class_map, "log-probabilities")
    with np.errstate(divide="ignore"):
        a = lp[..., :, None] + np.log(m)  # (..., C_src, C_dst)
    top = a.max(-2, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(a - safe).sum(-2)) + safe[..., 0, :]
    return out
