"""Temperature scaling, ECE and expert-weight fitting (``synctva_ros.model.calibration``)."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.model.calibration import (check_logits_labels, expected_calibration_error, fit_temperature,
                                           fit_weights)
from synctva_ros.model.experts import log_softmax


def _sample(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One label per row of ``probs``."""
    u = rng.random((len(probs), 1))
    return np.minimum((probs.cumsum(1) < u).sum(1), probs.shape[1] - 1)


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_temperature_recovered(t_true: float) -> None:
    """Labels drawn from softmax(z / T): the fit finds T, and the ECE drops."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20000, 5)) * 3
    y = _sample(rng, np.exp(log_softmax(z / t_true)))
    fit = fit_temperature(z, y)
    assert fit.temperature == pytest.approx(t_true, rel=0.05)
    assert fit.nll_after < fit.nll_before and fit.ece_after < fit.ece_before
    assert fit.ece_after < 0.02 and not fit.at_bound and fit.n == 20000


def test_calibrated_logits_keep_t_near_one() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20000, 4)) * 2
    y = _sample(rng, np.exp(log_softmax(z)))
    assert fit_temperature(z, y).temperature == pytest.approx(1.0, rel=0.05)


def test_ece_by_hand() -> None:
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # bins: conf 0.9 (two, acc 0.5) -> |0.5 - 0.9| * 2/4; 0.6 (acc 1) -> 0.4/4; 0.7 (acc 1) -> 0.3/4
    assert expected_calibration_error(p, y) == pytest.approx(0.2 + 0.1 + 0.075)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == pytest.approx(0.0)


@pytest.mark.parametrize("logits,labels,match", [
    (np.zeros((0, 3)), np.zeros(0, int), "non-empty"),
    (np.array([[np.nan, 0.0]]), np.array([0]), "NaN"),
    (np.array([[0.0, 1.0]]), np.array([2]), "outside"),
    (np.array([[0.0, 1.0]]), np.array([-1]), "outside"),
    (np.array([[0.0, 1.0]]), np.array([0.5]), "integers"),
    (np.array([[0.0, 1.0]]), np.array([0, 1]), "shape"),
    (np.array([[0.0, np.inf]]), np.array([0]), "infinite"),
])
def test_bad_inputs(logits: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_logits_labels(logits, labels)
    with pytest.raises(ValueError, match=match):
        fit_temperature(logits, labels)


def test_label_with_zero_probability() -> None:
    with pytest.raises(ValueError, match="-inf"):
        fit_temperature(np.array([[0.0, -np.inf], [0.0, 1.0]]), np.array([1, 0]))


def _experts(rng: np.random.Generator, n: int = 6000, c: int = 4) -> tuple[dict, np.ndarray, np.ndarray]:
    """Two conditionally independent experts: 'good' is the exact Bayes posterior of x ~ N(mu_y, I)
    (calibrated evidence, optimal weight 1); 'noise' carries no information (the prior plus noise)."""
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    y = _sample(rng, np.broadcast_to(prior, (n, c)))
    mu = rng.normal(size=(c, 3)) * 1.5
    x = mu[y] + rng.normal(size=(n, 3))
    good = log_softmax(-0.5 * ((x[:, None, :] - mu[None]) ** 2).sum(-1) + np.log(prior))
    noise = log_softmax(np.log(prior) + rng.normal(size=(n, c)) * 1.5)
    return {"good": good, "noise": noise}, y, prior


def test_weights_fit() -> None:
    lps, y, prior = _experts(np.random.default_rng(2))
    fit = fit_weights(lps, y, prior)
    assert fit.converged and fit.n == len(y)
    assert fit.weights["noise"] < 0.1 and fit.weights["good"] == pytest.approx(1.0, abs=0.1)
    assert fit.nll_after < fit.nll_before
    # the optimum is a stationary point: moving any weight does not lower the NLL
    fit0 = fit_weights({"good": lps["good"]}, y, prior)
    assert fit.nll_after <= fit0.nll_before + 1e-9


def test_weights_ridge_and_missing_rows() -> None:
    rng = np.random.default_rng(3)
    lps, y, prior = _experts(rng, n=400)
    strong = fit_weights(lps, y, prior, ridge=1e4)
    assert all(w == pytest.approx(1.0, abs=0.01) for w in strong.weights.values())
    present = {"noise": rng.random(len(y)) < 0.5}
    lps["noise"][~present["noise"]] = np.nan
    fit = fit_weights(lps, y, prior, present=present)
    assert np.isfinite(fit.nll_after) and fit.weights["noise"] < fit.weights["good"]


def test_weights_errors() -> None:
    lps, y, prior = _experts(np.random.default_rng(4), n=50)
    with pytest.raises(ValueError, match="at least one"):
        fit_weights({}, y, prior)
    with pytest.raises(ValueError, match="outside"):
        fit_weights(lps, y + 10, prior)
    bad = dict(lps, noise=np.where(np.arange(50)[:, None] == 3, np.nan, lps["noise"]))
    with pytest.raises(ValueError, match="NaN"):
        fit_weights(bad, y, prior)
    with pytest.raises(ValueError, match="non-empty"):
        fit_weights({"a": np.zeros((0, 4))}, np.zeros(0, int), prior)
