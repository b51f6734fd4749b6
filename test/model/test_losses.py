from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from synctva_ros.config import ModelConfig
from synctva_ros.model.losses import FocalLoss, build_loss, class_weights


def test_balanced_weights_formula():
    w = class_weights([30, 10, 0], power=1.0)
    assert torch.allclose(w[:2], torch.tensor([40 / (3 * 30), 40 / (3 * 10)]))
    assert w[2] == 0
    assert torch.allclose(class_weights([30, 10], power=0.0), torch.ones(2))
    with pytest.raises(ValueError):
        class_weights([0, 0])


def test_focal_with_gamma_zero_equals_weighted_ce():
    torch.manual_seed(0)
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, -1])
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    ce = nn.CrossEntropyLoss(weight=w, ignore_index=-1)(logits, y)
    assert torch.allclose(FocalLoss(0.0, w)(logits, y), ce, atol=1e-6)
    assert FocalLoss(2.0, w)(logits, y) < ce


def test_factory():
    cfg = ModelConfig(class_names=["a", "b"])
    assert isinstance(build_loss(dataclasses.replace(cfg, loss="ce")), nn.CrossEntropyLoss)
    loss = build_loss(cfg, [10, 30])
    assert torch.allclose(loss.weight, torch.tensor([2.0, 2 / 3]))
    assert isinstance(build_loss(dataclasses.replace(cfg, loss="focal"), [1, 1]), FocalLoss)
    with pytest.raises(ValueError):
        build_loss(cfg)
    with pytest.raises(ValueError):
        build_loss(cfg, [1, 2, 3])
