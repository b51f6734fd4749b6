r"""A product of calibrated experts: per-modality classifiers fused as naive-Bayes evidence.

Each expert :math:`e` (text, audio, visual) sees its own input :math:`x_e` and gives logits :math:`z_e` over
its classes. Its temperature-scaled posterior (Guo et al., "On calibration of modern neural networks",
ICML 2017) is :math:`\log p_e(c \mid x_e) = \operatorname{log\_softmax}(z_e / T_e)`, optionally relabelled
onto the common classes by a class map (:mod:`synctva_ros.model.class_maps`). If the inputs are
conditionally independent given the class, Bayes' rule gives

.. math::
    p(c \mid x_1, \dots, x_E) \propto \pi(c) \prod_e p(x_e \mid c)
                              \propto \pi(c) \prod_e \frac{p_e(c \mid x_e)}{\pi_e(c)}

because each expert's posterior :math:`p_e(c \mid x_e) \propto p(x_e \mid c)\, \pi_e(c)` already contains its
training prior :math:`\pi_e` once. With per-expert weights :math:`w_e \ge 0` (default 1; a tempered
product, Hinton's product of experts) the fused log-posterior is

.. math::
    \log p(c \mid x) = \sum_e w_e \bigl(\log p_e(c \mid x_e) - \log \pi_e(c)\bigr) + \log \pi(c) + \text{const},

and with one common prior :math:`\pi_e = \pi` this is the product rule with the prior counted once:

.. math::
    \log p(c \mid x) = \sum_e w_e \log p_e(c \mid x_e) - \Bigl(\sum_e w_e - 1\Bigr) \log \pi(c) + \text{const}.

The constant is removed by a final ``log_softmax``. A missing expert (``None``, or a row masked out) has
weight 0 for that row: it drops out, and with no expert at all the result is the prior. One expert with
weight 1 returns its own posterior unchanged; two identical experts double the log-odds and subtract the
prior once.

Sources: G. E. Hinton, "Training products of experts by minimizing contrastive divergence", Neural
Computation 14(8), 2002; J. Kittler, M. Hatef, R. P. W. Duin, J. Matas, "On combining classifiers", IEEE
TPAMI 20(3), 1998 (the product rule, their Eq. 9, with the prior counted once); C. Guo, G. Pleiss, Y. Sun,
K. Q. Weinberger, ICML 2017 (temperature scaling). Fitting: :mod:`synctva_ros.model.calibration`.

Everything here is numpy, float64 (the fusion is a few (B, C) sums; no torch needed at runtime).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from synctva_ros.model.class_maps import ClassMap, map_log_probs

__all__ = ["log_softmax", "normalise_prior", "expert_log_posterior", "product_of_experts", "ExpertFusion"]


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable ``log_softmax`` (``-inf`` entries stay ``-inf``; a row must have a finite entry)."""
    z = np.asarray(z, np.float64)
    top = z.max(axis, keepdims=True)
    with np.errstate(divide="ignore"):
        return z - top - np.log(np.exp(z - top).sum(axis, keepdims=True))


def normalise_prior(prior: np.ndarray | list[float], n_classes: int | None = None) -> np.ndarray:
    """A class prior (probabilities or counts) as probabilities.

    Args:
        prior: ``(C,)`` non-negative, positive sum (counts are fine).
        n_classes: the expected ``C`` (checked when given).

    Returns:
        ``(C,)`` float64 summing to 1.

    Raises:
        ValueError: wrong shape, a negative, NaN or zero entry, or a zero sum. A zero prior would make the
            class impossible whatever the evidence, so it is refused.
    """
    pi = np.asarray(prior, np.float64)
    if pi.ndim != 1 or (n_classes is not None and pi.shape[0] != n_classes):
        raise ValueError(f"prior must have shape ({n_classes if n_classes is not None else 'C'},), got {pi.shape}")
    if not np.all(np.isfinite(pi)) or (pi <= 0).any():
        raise ValueError(f"prior entries must be finite and > 0, got {pi.tolist()}")
    return pi / pi.sum()


def expert_log_posterior(logits: np.ndarray, temperature: float = 1.0,
                         class_map: ClassMap | np.ndarray | None = None) -> np.ndarray:
    """One expert's calibrated log-posterior: ``log_softmax(logits / T)``, then relabelled by ``class_map``.

    Log-probabilities are valid logits (an expert that only gives probabilities passes their log).

    Args:
        logits: ``(B, C_src)`` logits.
        temperature: ``T > 0``.
        class_map: a map onto the common classes (:mod:`~synctva_ros.model.class_maps`), or None.

    Returns:
        ``(B, C)`` log-probabilities (``C = C_dst`` with a map).

    Raises:
        ValueError: ``T <= 0`` or not finite, NaN logits, not 2-D.
    """
    z = np.asarray(logits, np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be (B, C), got shape {z.shape}")
    if np.isnan(z).any():
        raise ValueError("logits contain NaN")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    lp = log_softmax(z / temperature)
    return lp if class_map is None else map_log_probs(lp, class_map)


def product_of_experts(log_posteriors: Mapping[str, np.ndarray | None], prior: np.ndarray | list[float],
                       weights: Mapping[str, float] | None = None,
                       present: Mapping[str, np.ndarray] | None = None,
                       expert_priors: Mapping[str, np.ndarray | list[float]] | None = None) -> np.ndarray:
    r"""Fuse experts' log-posteriors: :math:`\sum_e w_e (\log p_e - \log \pi_e) + \log \pi`, normalised.

    Args:
        log_posteriors: ``{expert: (B, C) log-probabilities or None}`` over the common classes (already
            temperature-scaled and mapped, see :func:`expert_log_posterior`); None means missing.
        prior: ``(C,)`` the class prior :math:`\pi` (probabilities or counts).
        weights: ``{expert: w >= 0}``; missing names weigh 1.
        present: ``{expert: (B,) bool}``: rows where the expert is missing are False (their values are then
            ignored, NaN allowed there). Absent names are present in every row.
        expert_priors: ``{expert: (C,) prior}`` that expert was trained with; default :math:`\pi`.

    Returns:
        ``(B, C)`` float64 fused log-probabilities (each row's ``exp`` sums to 1). With no expert present in
        a row, that row is :math:`\log \pi`.

    Raises:
        ValueError: shapes disagree, a negative or non-finite weight, NaN in a present row, a bad prior, or no
            expert given at all (``B`` unknown).

    Shapes:
        every expert ``(B, C)``; ``prior`` ``(C,)``; ``present[e]`` ``(B,)``; result ``(B, C)``.
    """
    weights = dict(weights or {})
    present = dict(present or {})
    given = {k: np.asarray(v, np.float64) for k, v in log_posteriors.items() if v is not None}
    if not given:
        raise ValueError("no expert given (all None): the batch size is unknown; use the prior directly")
    shapes = {v.shape for v in given.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"experts' log-posteriors must share one (B, C) shape, got {shapes}")
    b, c = next(iter(shapes))
    log_pi = np.log(normalise_prior(prior, c))
    fused = np.broadcast_to(log_pi, (b, c)).copy()
    for name, lp in given.items():
        w = float(weights.get(name, 1.0))
        if not (np.isfinite(w) and w >= 0):
            raise ValueError(f"weight of {name!r} must be finite and >= 0, got {w}")
        mask = np.ones(b, bool) if name not in present else np.asarray(present[name], bool)
        if mask.shape != (b,):
            raise ValueError(f"present[{name!r}] must have shape ({b},), got {mask.shape}")
        if w == 0 or not mask.any():
            continue
        if np.isnan(lp[mask]).any():
            raise ValueError(f"log-posteriors of {name!r} contain NaN")
        log_pe = log_pi if expert_priors is None or name not in expert_priors else \
            np.log(normalise_prior(expert_priors[name], c))
        with np.errstate(invalid="ignore"):
            term = w * (lp - log_pe)
        fused[mask] += term[mask]
    return log_softmax(fused)


@dataclass(eq=False)  # holds an array: no field-wise ==
class ExpertFusion:
    """Calibrated experts with their fusion settings (what the checkpoint manifest stores).

    Attributes:
        prior: ``(C,)`` class prior over the common classes.
        temperatures: ``{expert: T}``; missing names use 1.
        weights: ``{expert: w}``; missing names use 1.
        class_maps: ``{expert: ClassMap}`` for experts whose classes differ from the common ones.
    """

    prior: np.ndarray
    temperatures: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    class_maps: dict[str, ClassMap] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prior = normalise_prior(self.prior)

    def log_posteriors(self, logits: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
        """Each expert's calibrated log-posterior over the common classes (None stays None).

        Shapes:
            ``{expert: (B, C_e)}`` -> ``{expert: (B, C)}``.
        """
        return {k: None if z is None else expert_log_posterior(z, self.temperatures.get(k, 1.0),
                                                                self.class_maps.get(k))
                for k, z in logits.items()}

    def __call__(self, logits: Mapping[str, np.ndarray | None],
                 present: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Fused ``(B, C)`` log-probabilities from raw ``{expert: (B, C_e) logits or None}``.

        Raises:
            ValueError: as :func:`expert_log_posterior` and :func:`product_of_experts`.
        """
        return product_of_experts(self.log_posteriors(logits), self.prior, self.weights, present)
