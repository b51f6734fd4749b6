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
label) are ignored by both.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synctva_ros.config import ModelConfig

__all__ = ["class_weights", "FocalLoss", "build_loss", "IGNORE_INDEX"]

logger = logging.getLogger(__name__)

#: Target value that the losses skip (``UtteranceFeatures.label`` = -1 means unknown).
IGNORE_INDEX = -1


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


def build_loss(cfg: ModelConfig, class_counts: Sequence[int] | Tensor | None = None) -> nn.Module:
    """Loss named by ``cfg.loss``: ``"ce"``, ``"weighted_ce"`` or ``"focal"``.

    ``weighted_ce`` and ``focal`` use :func:`class_weights` (``cfg.class_weight_power``) of
    ``class_counts``; ``focal`` without counts is unweighted.

    Raises:
        ValueError: unknown loss, ``weighted_ce`` without counts, counts of the wrong length.
    """
    weight = None
    if class_counts is not None:
        if len(class_counts) != len(cfg.class_names):
            raise ValueError(f"{len(class_counts)} class counts for {len(cfg.class_names)} classes")
        weight = class_weights(class_counts, cfg.class_weight_power)
    if cfg.loss == "ce":
        return nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    if cfg.loss == "weighted_ce":
        if weight is None:
            raise ValueError("loss 'weighted_ce' needs the training class counts")
        return nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE_INDEX)
    if cfg.loss == "focal":
        return FocalLoss(cfg.focal_gamma, weight)
    raise ValueError(f"unknown loss '{cfg.loss}' (ce, weighted_ce, focal)")
