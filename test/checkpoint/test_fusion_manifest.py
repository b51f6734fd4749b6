"""The ``expert_fusion`` manifest block (``synctva_ros.checkpoint.fusion``): schema, checks, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.checkpoint.fusion import (FUSION_KEY, VISUAL_TEMPERATURE, default_fusion_block, fusion_block,
                                           fusion_for_manifest, fusion_from_block, read_fusion,
                                           validate_fusion_block, visual_class_map, write_fusion)
from synctva_ros.checkpoint.io import FORMAT, MANIFEST_FILE, CheckpointError
from synctva_ros.model.class_maps import IEMOCAP6, MELD7
from synctva_ros.model.experts import product_of_experts

PRIOR = [4.0, 2, 1, 1, 1, 0.5, 0.5]


def _checkpoint(tmp_path: Path, classes: tuple[str, ...] = MELD7) -> Path:
    man = {"format": FORMAT, "name": "x", "architecture": {}, "dims": {}, "class_names": list(classes),
           "active": {}, "extractors": {}, "metrics": {"weighted_f1": 0.5}}
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(man))
    return tmp_path


def test_round_trip(tmp_path: Path) -> None:
    block = fusion_block({"model": 1.3, "visual": 0.8}, PRIOR, weights={"visual": 0.6}, class_map=None,
                         fits={"visual": {"n": 200, "nll_after": 1.1}})
    assert block["experts"]["model"] == {"temperature": 1.3, "weight": 1.0}
    assert sum(block["prior"]) == pytest.approx(1.0)
    d = _checkpoint(tmp_path)
    write_fusion(d, block)
    man = json.loads((d / MANIFEST_FILE).read_text())
    assert man["metrics"] == {"weighted_f1": 0.5} and man[FUSION_KEY] == block
    assert read_fusion(d) == block
    assert read_fusion(man) == block
    write_fusion(d, None)
    assert read_fusion(d) is None


def test_runtime_fusion_from_block() -> None:
    block = fusion_block({"model": 2.0, "visual": 1.0}, [1.0] * 6, weights={"visual": 0.5},
                         class_map="meld7->iemocap6")
    fusion = fusion_from_block(block, IEMOCAP6)
    assert fusion.temperatures == {"model": 2.0, "visual": 1.0} and fusion.weights["visual"] == 0.5
    rng = np.random.default_rng(0)
    model, face = rng.normal(size=(2, 6)), rng.normal(size=(2, 7))
    out = fusion({"model": model, "visual": face})
    m = fusion.class_maps["visual"].matrix
    t = model / 2.0 - np.log(np.exp(model / 2.0).sum(1, keepdims=True))
    f = np.log(np.exp(face - np.log(np.exp(face).sum(1, keepdims=True))) @ m)
    np.testing.assert_allclose(out, product_of_experts({"model": t, "visual": f}, [1.0] * 6, {"visual": 0.5}))


def test_defaults_without_a_block_and_class_map_by_the_checkpoint_classes() -> None:
    man = {"class_names": list(MELD7)}
    fusion, block, found = fusion_for_manifest(man)
    assert not found and block == default_fusion_block(MELD7)
    assert fusion.temperatures == {"model": 1.0, "visual": VISUAL_TEMPERATURE} == {"model": 1.0, "visual": 3.32}
    assert fusion.weights == {"model": 1.0, "visual": 1.0} and fusion.class_maps == {}
    np.testing.assert_allclose(fusion.prior, np.full(7, 1 / 7))
    fusion, _, _ = fusion_for_manifest({"class_names": list(IEMOCAP6)})
    assert fusion.class_maps["visual"].name == "meld7->iemocap6"
    assert visual_class_map(MELD7) is None
    perm = visual_class_map(tuple(reversed(MELD7)))
    np.testing.assert_allclose(perm.matrix, np.eye(7)[:, ::-1])
    with pytest.raises(CheckpointError, match="no class map"):
        visual_class_map(("pos", "neg"))
    found_block = fusion_block({"model": 1.5}, PRIOR)
    fusion, block, found = fusion_for_manifest({"class_names": list(MELD7), FUSION_KEY: found_block})
    assert found and block == found_block and fusion.temperatures == {"model": 1.5}


@pytest.mark.parametrize("change,match", [
    (lambda b: b.update(extra=1), "unknown"),
    (lambda b: b.pop("prior"), "needs keys"),
    (lambda b: b["experts"].update(text={"temperature": 1.0, "weight": 1.0}), "unknown expert"),
    (lambda b: b["experts"]["model"].update(temperature=0), "temperature"),
    (lambda b: b["experts"]["model"].update(weight=-0.1), "weight"),
    (lambda b: b["experts"]["model"].update(weight=float("nan")), "weight"),
    (lambda b: b["experts"]["model"].update(temprature=1.0), "temperature, weight"),
    (lambda b: b.update(prior=[1.0, 0.0, 1, 1, 1, 1, 1]), "prior"),
    (lambda b: b.update(prior=[1.0, 1.0]), "7 classes"),
    (lambda b: b.update(class_map="face7->nowhere"), "unknown"),
    (lambda b: b.update(class_map="face7->iemocap6"), "maps from"),
    (lambda b: b.update(class_map="meld7->iemocap6"), "maps onto"),
    (lambda b: b.update(experts={}), "non-empty"),
])
def test_invalid_blocks(change, match: str) -> None:
    block = fusion_block({"model": 1.0, "visual": 1.0}, PRIOR)
    change(block)
    with pytest.raises(CheckpointError, match=match):
        validate_fusion_block(block, MELD7)


def test_iemocap_checkpoint(tmp_path: Path) -> None:
    d = _checkpoint(tmp_path, IEMOCAP6)
    block = fusion_block({"visual": 1.2}, [648, 1084, 1708, 1103, 1041, 1849], class_map="meld7->iemocap6")
    write_fusion(d, block)
    assert read_fusion(d)["class_map"] == "meld7->iemocap6"
    with pytest.raises(CheckpointError, match="7 entries"):
        write_fusion(d, dict(block, class_map=None, prior=[1.0] * 7))
    assert read_fusion(d) == block  # a refused write leaves the manifest as it was
    with pytest.raises(CheckpointError, match="without a temperature"):
        fusion_block({"model": 1.0}, PRIOR, weights={"visual": 1.0})
