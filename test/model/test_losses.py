from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from synctva_ros.config import ModelConfig
from synctva_ros.model.losses import FocalLoss, LogitAdjustedLoss, build_loss, class_weights


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


# Hand computations on two rows, three classes: logits z, targets y, counts n = (6, 2, 1) (N = 9, C = 3).
Z = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]
Y = [0, 2]
N = [6, 2, 1]


def _logp(row, k):
    return row[k] - math.log(sum(math.exp(v) for v in row))


def test_weighted_ce_by_hand_for_powers_one_and_half():
    for p in (1.0, 0.5):
        w = [(9 / (3 * n)) ** p for n in N]  # p = 1: 0.5, 1.5, 3.0
        want = -(w[0] * _logp(Z[0], 0) + w[2] * _logp(Z[1], 2)) / (w[0] + w[2])
        cfg = ModelConfig(class_names=["a", "b", "c"], loss="weighted_ce", class_weight_power=p)
        got = build_loss(cfg, N)(torch.tensor(Z), torch.tensor(Y))
        assert math.isclose(float(got), want, rel_tol=1e-6), (p, float(got), want)
    ce = build_loss(ModelConfig(class_names=["a", "b", "c"]), N, name="ce")(torch.tensor(Z), torch.tensor(Y))
    assert math.isclose(float(ce), -(_logp(Z[0], 0) + _logp(Z[1], 2)) / 2, rel_tol=1e-6)


def test_focal_by_hand():
    w = [0.5, 1.5, 3.0]
    terms = []
    for row, k in zip(Z, Y):
        lp = _logp(row, k)
        terms.append((w[k], -w[k] * (1 - math.exp(lp)) ** 2 * lp))
    want = sum(t for _, t in terms) / sum(wk for wk, _ in terms)
    cfg = ModelConfig(class_names=["a", "b", "c"], loss="focal", focal_gamma=2.0, class_weight_power=1.0)
    got = build_loss(cfg, N)(torch.tensor(Z), torch.tensor(Y))
    assert math.isclose(float(got), want, rel_tol=1e-6)


def test_logit_adjusted_by_hand_and_at_tau_zero():
    cfg = ModelConfig(class_names=["a", "b", "c"])
    for tau in (1.0, 0.5):
        adj = [[v + tau * math.log(n / 9) for v, n in zip(row, N)] for row in Z]
        want = -(_logp(adj[0], 0) + _logp(adj[1], 2)) / 2
        loss = build_loss(cfg, N, name="logit_adjusted", tau=tau)
        assert isinstance(loss, LogitAdjustedLoss)
        assert math.isclose(float(loss(torch.tensor(Z), torch.tensor(Y))), want, rel_tol=1e-6), tau
    # the rare target (class c, prior 1/9) costs more than under plain cross-entropy
    plain = -_logp(Z[1], 2)
    adjusted = build_loss(cfg, N, name="logit_adjusted")(torch.tensor(Z[1:]), torch.tensor(Y[1:]))
    assert float(adjusted) > plain
    zero = build_loss(cfg, N, name="logit_adjusted", tau=0.0)(torch.tensor(Z), torch.tensor(Y))
    assert math.isclose(float(zero), -(_logp(Z[0], 0) + _logp(Z[1], 2)) / 2, rel_tol=1e-6)
    ignored = LogitAdjustedLoss(N)(torch.tensor(Z), torch.tensor([0, -1]))
    assert math.isclose(float(ignored), -_logp([v + math.log(n / 9) for v, n in zip(Z[0], N)], 0), rel_tol=1e-6)
    with pytest.raises(ValueError, match="needs the training class counts"):
        build_loss(cfg, None, name="logit_adjusted")
    with pytest.raises(ValueError, match="tau"):
        LogitAdjustedLoss(N, tau=-1.0)
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss(cfg, N, name="hinge")
