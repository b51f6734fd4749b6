"""The product of calibrated experts (``synctva_ros.model.experts``) against its closed form."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.model.class_maps import get_class_map
from synctva_ros.model.experts import (ExpertFusion, expert_log_posterior, log_softmax, normalise_prior,
                                       product_of_experts)

PRIOR = np.array([0.5, 0.3, 0.2])


def _lp(rng: np.random.Generator, b: int = 4, c: int = 3) -> np.ndarray:
    return log_softmax(rng.normal(size=(b, c)) * 2)


def test_closed_form_two_experts() -> None:
    """p(c|x) = p1 p2 / pi, normalised, by hand on one row."""
    p1, p2 = np.array([[0.6, 0.3, 0.1]]), np.array([[0.2, 0.5, 0.3]])
    out = np.exp(product_of_experts({"text": np.log(p1), "visual": np.log(p2)}, PRIOR))
    expected = p1 * p2 / PRIOR
    np.testing.assert_allclose(out, expected / expected.sum(), rtol=1e-12)


def test_closed_form_weights_and_expert_priors() -> None:
    rng = np.random.default_rng(0)
    a, b = _lp(rng), _lp(rng)
    pa = np.array([0.2, 0.2, 0.6])
    out = product_of_experts({"text": a, "audio": b}, PRIOR, weights={"text": 0.7, "audio": 1.8},
                             expert_priors={"text": pa})
    raw = 0.7 * (a - np.log(pa)) + 1.8 * (b - np.log(PRIOR)) + np.log(PRIOR)
    np.testing.assert_allclose(out, log_softmax(raw), atol=1e-12)
    # with a common prior it is sum w log p - (sum w - 1) log pi
    common = product_of_experts({"text": a, "audio": b}, PRIOR, weights={"text": 0.7, "audio": 1.8})
    np.testing.assert_allclose(common, log_softmax(0.7 * a + 1.8 * b - (0.7 + 1.8 - 1) * np.log(PRIOR)), atol=1e-12)


def test_single_expert_weight_one_is_unchanged() -> None:
    a = _lp(np.random.default_rng(1))
    np.testing.assert_allclose(product_of_experts({"text": a}, PRIOR), a, atol=1e-12)
    np.testing.assert_allclose(product_of_experts({"text": a, "visual": None}, PRIOR), a, atol=1e-12)


def test_two_identical_experts_double_log_odds_and_subtract_prior_once() -> None:
    a = _lp(np.random.default_rng(2))
    out = product_of_experts({"text": a, "audio": a}, PRIOR)
    lo = lambda lp, i, j: lp[:, i] - lp[:, j]  # noqa: E731
    log_pi = np.log(PRIOR)
    for i, j in ((0, 1), (2, 0)):
        np.testing.assert_allclose(lo(out, i, j), 2 * lo(a, i, j) - (log_pi[i] - log_pi[j]), atol=1e-12)


def test_missing_expert_and_masked_rows() -> None:
    rng = np.random.default_rng(3)
    a, b = _lp(rng), _lp(rng)
    only_a = product_of_experts({"text": a}, PRIOR)
    np.testing.assert_allclose(product_of_experts({"text": a, "visual": None}, PRIOR), only_a)
    np.testing.assert_allclose(product_of_experts({"text": a, "visual": b}, PRIOR, weights={"visual": 0}), only_a)
    b_nan = b.copy()
    b_nan[1] = np.nan
    mask = np.array([True, False, True, False])
    out = product_of_experts({"text": a, "visual": b_nan}, PRIOR, present={"visual": mask})
    both = product_of_experts({"text": a, "visual": b}, PRIOR)
    np.testing.assert_allclose(out[mask], both[mask])
    np.testing.assert_allclose(out[~mask], only_a[~mask])
    # no expert present in a row: the prior
    out = product_of_experts({"text": a}, PRIOR, present={"text": mask})
    np.testing.assert_allclose(out[~mask], np.log(np.broadcast_to(PRIOR, (2, 3))))


def test_errors() -> None:
    a = _lp(np.random.default_rng(4))
    with pytest.raises(ValueError, match="no expert"):
        product_of_experts({"text": None}, PRIOR)
    with pytest.raises(ValueError, match="weight"):
        product_of_experts({"text": a}, PRIOR, weights={"text": -1})
    with pytest.raises(ValueError, match="shape"):
        product_of_experts({"text": a, "audio": a[:, :2]}, PRIOR)
    with pytest.raises(ValueError, match="prior"):
        product_of_experts({"text": a}, [0.5, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        product_of_experts({"text": np.full((2, 3), np.nan)}, PRIOR)
    with pytest.raises(ValueError, match="prior"):
        normalise_prior([1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="temperature"):
        expert_log_posterior(a, temperature=0.0)
    with pytest.raises(ValueError, match="NaN"):
        expert_log_posterior(np.array([[np.nan, 1.0]]))


def test_fusion_applies_temperature_and_class_map() -> None:
    """The face expert in fer's order, temperature 2, mapped onto MELD, fused with a MELD text expert."""
    rng = np.random.default_rng(5)
    face_logits, text_logits = rng.normal(size=(3, 7)), rng.normal(size=(3, 7))
    prior = np.arange(1, 8, dtype=float)
    fusion = ExpertFusion(prior=prior, temperatures={"visual": 2.0, "text": 0.5},
                          class_maps={"visual": get_class_map("face7->meld7")})
    out = fusion({"text": text_logits, "visual": face_logits, "audio": None})
    face_meld = log_softmax(face_logits / 2.0) @ get_class_map("face7->meld7").matrix  # a permutation
    expected = log_softmax(text_logits / 0.5) + face_meld - np.log(prior / prior.sum())
    np.testing.assert_allclose(out, log_softmax(expected), atol=1e-12)
    np.testing.assert_allclose(np.exp(out).sum(1), 1.0)
