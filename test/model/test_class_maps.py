"""Class maps from the face expert's classes onto MELD's and IEMOCAP's (``synctva_ros.model.class_maps``)."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.datasets.iemocap import IEMOCAP_CLASSES
from synctva_ros.datasets.meld import MELD_CLASSES
from synctva_ros.features.faces.expression import FER_CLASSES
from synctva_ros.features.faces.experts import FACE_TO_MELD as RUNTIME_FACE_TO_MELD
from synctva_ros.model.class_maps import (CLASS_MAPS, FACE7, IEMOCAP6, MELD7, ClassMap, apply_class_map, bayes_map,
                                          get_class_map, map_log_probs)


def test_orders_match_the_package() -> None:
    assert FACE7 == FER_CLASSES and MELD7 == MELD_CLASSES and IEMOCAP6 == IEMOCAP_CLASSES


@pytest.mark.parametrize("name", sorted(CLASS_MAPS))
def test_rows_sum_to_one(name: str) -> None:
    m = get_class_map(name)
    assert m.matrix.shape == (len(m.src), len(m.dst))
    assert (m.matrix >= 0).all()
    np.testing.assert_allclose(m.matrix.sum(1), 1.0, atol=1e-12)
    assert (m.matrix.sum(0) > 0).all(), "every destination class gets mass from some source class"


def test_face_to_meld_is_the_runtime_permutation() -> None:
    m = get_class_map("face7->meld7")
    for i, s in enumerate(FACE7):
        assert m.matrix[i].tolist().count(1.0) == 1
        assert m.dst[int(m.matrix[i].argmax())] == RUNTIME_FACE_TO_MELD[s]


def test_face_to_iemocap_rules() -> None:
    m = get_class_map("face7->iemocap6")
    row = {s: dict(zip(IEMOCAP6, m.matrix[i])) for i, s in enumerate(FACE7)}
    assert row["happy"]["hap"] == pytest.approx(648 / (648 + 1041))
    assert row["happy"]["exc"] == pytest.approx(1041 / (648 + 1041))
    assert row["angry"]["ang"] == pytest.approx(1103 / (1103 + 0.5 * 1849))
    assert row["disgust"]["fru"] == pytest.approx(1.0)
    assert row["sad"]["fru"] == pytest.approx(0.25 * 1849 / (1084 + 0.25 * 1849))
    assert row["neutral"]["neu"] == pytest.approx(1.0)
    prior = np.array([648, 1084, 1708, 1103, 1041, 1849]) / 7433
    for s in ("fear", "surprise"):  # no evidence: the prior
        np.testing.assert_allclose([row[s][d] for d in IEMOCAP6], prior)
    # the MELD-ordered version has the same rows, reordered
    mm = get_class_map("meld7->iemocap6")
    for i, c in enumerate(MELD7):
        s = next(f for f, meld in RUNTIME_FACE_TO_MELD.items() if meld == c and f in FACE7)
        np.testing.assert_allclose(mm.matrix[i], m.matrix[FACE7.index(s)])


def test_apply_and_log_space_agree() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), size=5)
    m = get_class_map("face7->iemocap6")
    q = apply_class_map(p, m)
    np.testing.assert_allclose(q.sum(1), 1.0)
    np.testing.assert_allclose(map_log_probs(np.log(p), m), np.log(q), atol=1e-12)
    lp = np.log(p)
    lp[0, 0] = -np.inf  # a zero probability stays usable
    assert np.isfinite(map_log_probs(lp, m)).all()


def test_errors() -> None:
    with pytest.raises(KeyError, match="known"):
        get_class_map("face7->nowhere")
    with pytest.raises(ValueError, match="rows summing"):
        ClassMap("bad", ("a", "b"), ("x",), np.array([[1.0], [0.5]]))
    with pytest.raises(ValueError, match="expects"):
        apply_class_map(np.ones((2, 6)) / 6, get_class_map("face7->meld7"))
    with pytest.raises(ValueError, match="bad entry"):
        bayes_map(("a",), ("x",), {"x": {"b": 1.0}}, [1.0])
