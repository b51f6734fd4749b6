"""One window's product of experts (``synctva_ros.model.window_fusion``)."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.model.class_maps import CLASS_MAPS
from synctva_ros.model.experts import ExpertFusion
from synctva_ros.model.window_fusion import evidence_shares, fuse_window


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def test_without_visual_the_result_is_the_model_posterior() -> None:
    z = np.array([2.0, 0.5, -1.0, 0.0, 0.3, -2.0, 1.0])
    fusion = ExpertFusion(prior=np.ones(7), temperatures={"model": 1.0, "visual": 3.32})
    out = fuse_window(fusion, z, np.array([0.7, 0.3, 0.0]), {"text": z}, None)
    np.testing.assert_allclose(out.probabilities, softmax(z))
    np.testing.assert_allclose(out.modality_probabilities["text"], softmax(z))
    assert not out.visual_used and "visual" not in out.modality_probabilities
    np.testing.assert_allclose(out.contributions, [0.7, 0.3, 0.0])


def test_visual_enters_by_the_product_rule_with_the_prior_counted_once() -> None:
    rng = np.random.default_rng(1)
    z, q = rng.normal(size=7), rng.dirichlet(np.ones(7))
    prior = rng.dirichlet(np.ones(7) * 5)
    fusion = ExpertFusion(prior=prior, temperatures={"model": 1.5, "visual": 3.0}, weights={"visual": 0.5})
    out = fuse_window(fusion, z, np.array([0.6, 0.4, 0.0]), {}, q)
    pm, pv = softmax(z / 1.5), softmax(np.log(q) / 3.0)
    expected = pm * (pv / prior) ** 0.5
    np.testing.assert_allclose(out.probabilities, expected / expected.sum(), rtol=1e-9)
    np.testing.assert_allclose(out.modality_probabilities["visual"], pv, rtol=1e-9)
    assert out.visual_used and out.contributions.sum() == pytest.approx(1.0)
    assert out.contributions[2] == pytest.approx(out.shares["visual"]) and 0 < out.shares["visual"] < 1
    assert out.contributions[0] / out.contributions[1] == pytest.approx(0.6 / 0.4)


def test_visual_weight_zero_reports_but_does_not_fuse_and_iemocap_is_mapped() -> None:
    z, q = np.zeros(6), np.array([0.05, 0.7, 0.05, 0.05, 0.05, 0.05, 0.05])
    m = CLASS_MAPS["meld7->iemocap6"]
    off = fuse_window(ExpertFusion(prior=np.ones(6), weights={"visual": 0.0}, class_maps={"visual": m}),
                      z, np.array([1.0, 0.0, 0.0]), {}, q)
    np.testing.assert_allclose(off.probabilities, np.full(6, 1 / 6))
    assert not off.visual_used and off.modality_probabilities["visual"].shape == (6,)
    on = fuse_window(ExpertFusion(prior=np.ones(6), class_maps={"visual": m}), z, np.array([1.0, 0.0, 0.0]), {}, q)
    np.testing.assert_allclose(on.probabilities, q @ m.matrix)  # a flat model: the mapped face decides
    assert on.contributions.tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_shares() -> None:
    flat = np.log(np.full(3, 1 / 3))
    assert evidence_shares({"a": flat, "b": flat}, np.full(3, 1 / 3), {}) == {"a": 0.5, "b": 0.5}
    s = evidence_shares({"a": np.log([0.8, 0.1, 0.1]), "b": flat}, np.full(3, 1 / 3), {})
    assert s == {"a": 1.0, "b": 0.0}
