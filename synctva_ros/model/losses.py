r"""Class-imbalance-aware training losses (Sync-TVA trains "with class imbalance in mind",
Deng et al., arXiv 2507.21395; MELD's largest class is 17x its smallest).

Class weights (``class_weights``), from training-set counts :math:`n_c`, :math:`N = \sum_c n_c`,
:math:`C` classes and ``power`` :math:`p`:

.. math::
    w_c = \left(\frac{N}{C\, n_c}\right)^{p}

``p = 1`` is scikit-learn's ``class_weight="balanced"`` (King & Zeng 2001); ``p = 0.5`` is the
milder inverse square root; ``p = 0`` gives all ones. A class with no training example gets
weight 0 (it never occurs as a target; a warning is logged).

Losses: weighted cross-entropy :math:`-w_y \log p_y` (PyTorch ``CrossEntropyLoss`` with
``weight``, mean normalised by :math:`\sum w_{y_i}`), and the focal loss of Lin et al. (2017)
:math:`-w_y (1 - p_y)^\gamma \log p_y`, normalised the same way. Targets ``-1`` (unknown
label) are ignored by all losses.

Logit adjustment (Menon, Jayasumana, Rawat, Jain, Veit, Kumar: "Long-tail learning via logit
adjustment", ICLR 2021, Eq. 10): with the training prior :math:`\pi_c = n_c / N` and
temperature :math:`\tau`,

.. math::
    \ell(y, f) = -\log \frac{e^{f_y + \tau \log \pi_y}}{\sum_{c} e^{f_c + \tau \log \pi_c}}

The offset is added **in training only**; the model's own logits :math:`f` are what it predicts
with, so rare classes need a larger margin during training and the checkpoint is unchanged.
A class with no training example counts as 1 in the prior (it keeps a finite offset).
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synctva_ros.config import ModelConfig

__all__ = ["class_weights", "FocalLoss", "LogitAdjustedLoss", "build_loss", "LOSSES", "IGNORE_INDEX"]

logger = logging.getLogger(__name__)

#: Target value that the losses skip (``UtteranceFeatures.label`` = -1 means unknown).
IGNORE_INDEX = -1
#: Loss names :func:`build_loss` knows.
LOSSES = ("ce", "weighted_ce", "focal", "logit_adjusted")


def class_weights(counts: Sequence[int] | Tensor, power: float = 1.0) -> Tensor:
    """Per-class weights ``(C,)`` float32 from class counts (formula in the module docstring).

    Raises:
        ValueError: empty counts, a negative count, all counts zero, or ``power < 0``.
    """
    n = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if n.numel() == 0 or bool((n < 0).any()) or float(n.sum()) <= 0:
        raise ValueError(f"class counts must be non-negative with a positive total, got {n.tolist()}")
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power}")
    zero = n == 0
    if bool(zero.any()):
        logger.warning("classes %s have no training example; their loss weight is 0", zero.nonzero().flatten().tolist())
    w = (n.sum() / (n.numel() * n.clamp(min=1))) ** power
    return torch.where(zero, torch.zeros_like(w), w).to(torch.float32)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., ICCV 2017) with optional class weights.

    Args:
        gamma: focusing parameter (0 = weighted cross-entropy).
        weight: ``(C,)`` class weights or ``None``.
        ignore_index: target value to skip.

    Shapes:
        logits ``(B, C)``, target ``(B,)`` int64 -> scalar.
    """

    def __init__(self, gamma: float = 2.0, weight: Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight.clone().float() if weight is not None else None)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        valid = target != self.ignore_index
        safe = torch.where(valid, target, torch.zeros_like(target))
        logp = F.log_softmax(logits, dim=-1).gather(1, safe.unsqueeze(1)).squeeze(1)
        w = self.weight[safe] if self.weight is not None else torch.ones_like(logp)
        w = w * valid.to(w.dtype)
        loss = -w * (1.0 - logp.exp()).clamp(min=0.0) ** self.gamma * logp
        return loss.sum() / w.sum().clamp(min=1e-12)


class LogitAdjustedLoss(nn.Module):
    """Logit-adjusted cross-entropy (Menon et al., ICLR 2021; formula in the module docstring).

    Args:
        class_counts: training examples per class ``(C,)`` (zeros count as 1).
        tau: temperature of the offset (0 = plain cross-entropy; the paper's default is 1).
        ignore_index: target value to skip.

    Shapes:
        logits ``(B, C)``, target ``(B,)`` int64 -> scalar (mean over non-ignored targets).

    Raises:
        ValueError: ``tau < 0`` or counts that are empty or negative.
    """

    def __init__(self, class_counts: Sequence[int] | Tensor, tau: float = 1.0,
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        n = torch.as_tensor(class_counts, dtype=torch.float64).flatten()
        if n.numel() == 0 or bool((n < 0).any()):
            raise ValueError(f"class counts must be non-negative, got {n.tolist()}")
        if tau < 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        n = n.clamp(min=1.0)
        self.tau = float(tau)
        self.ignore_index = ignore_index
        self.register_buffer("offset", (self.tau * torch.log(n / n.sum())).to(torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits + self.offset.to(logits.dtype), target, ignore_index=self.ignore_index)


def build_loss(cfg: ModelConfig, class_counts: Sequence[int] | Tensor | None = None, name: str | None = None,
               tau: float = 1.0) -> nn.Module:
    """Loss named by ``name`` (default ``cfg.loss``): one of :data:`LOSSES`.

    ``weighted_ce`` and ``focal`` use :func:`class_weights` (``cfg.class_weight_power``) of
    ``class_counts``; ``focal`` without counts is unweighted, its gamma is ``cfg.focal_gamma``.
    ``logit_adjusted`` is :class:`LogitAdjustedLoss` with temperature ``tau`` (no class weights:
    the offset already handles the imbalance).

    Args:
        cfg: the model configuration (class names, ``loss``, ``class_weight_power``, ``focal_gamma``).
        class_counts: training examples per class ``(C,)``.
        name: loss name overriding ``cfg.loss`` (``training.loss``); ``None`` or ``""`` = ``cfg.loss``.
        tau: logit-adjustment temperature.

    Returns:
        An ``nn.Module`` mapping ``(logits (B, C), target (B,))`` to a scalar.

    Raises:
        ValueError: unknown loss, ``weighted_ce`` / ``logit_adjusted`` without counts, counts of the
        wrong length.
    """
    loss = name or cfg.loss
    weight = None
    if class_counts is not None:
        if len(class_counts) != len(cfg.class_names):
            raise ValueError(f"{len(class_counts)} class counts for {len(cfg.class_names)} classes")
        weight = class_weights(class_counts, cfg.class_weight_power)
    if loss == "ce":
        return nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    if loss == "weighted_ce":
        if weight is None:
            raise ValueError("loss 'weighted_ce' needs the training class counts")
        return nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE_INDEX)
    if loss == "focal":
        return FocalLoss(cfg.focal_gamma, weight)
    if loss == "logit_adjusted":
        if class_counts is None:
            raise ValueError("loss 'logit_adjusted' needs the training class counts")
        return LogitAdjustedLoss(class_counts, tau)
    raise ValueError(f"unknown loss '{loss}' ({', '.join(LOSSES)})")
