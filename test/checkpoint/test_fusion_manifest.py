"""The ``expert_fusion`` manifest block (``synctva_ros.checkpoint.fusion``): schema, checks, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.checkpoint.fusion import (FUSION_KEY, fusion_block, fusion_from_block, read_fusion,
                                           validate_fusion_block, write_fusion)
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
    block = fusion_block({"text": 1.3, "visual": 0.8}, PRIOR, weights={"visual": 0.6}, class_map="face7->meld7",
                         fits={"visual": {"n": 200, "nll_after": 1.1}})
    assert block["experts"]["text"] == {"temperature": 1.3, "weight": 1.0}
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
    block = fusion_block({"text": 2.0, "visual": 1.0}, PRIOR, weights={"visual": 0.5}, class_map="face7->meld7")
    fusion = fusion_from_block(block, MELD7)
    assert fusion.temperatures == {"text": 2.0, "visual": 1.0} and fusion.weights["visual"] == 0.5
    rng = np.random.default_rng(0)
    text, face = rng.normal(size=(2, 7)), rng.normal(size=(2, 7))
    out = fusion({"text": text, "visual": face})
    m = fusion.class_maps["visual"].matrix
    t = text / 2.0 - np.log(np.exp(text / 2.0).sum(1, keepdims=True))
    f = (face - np.log(np.exp(face).sum(1, keepdims=True))) @ m
    np.testing.assert_allclose(out, product_of_experts({"text": t, "visual": f}, PRIOR, {"visual": 0.5}))


@pytest.mark.parametrize("change,match", [
    (lambda b: b.update(extra=1), "unknown"),
    (lambda b: b.pop("prior"), "needs keys"),
    (lambda b: b["experts"].update(smell={"temperature": 1.0, "weight": 1.0}), "unknown modality"),
    (lambda b: b["experts"]["text"].update(temperature=0), "temperature"),
    (lambda b: b["experts"]["text"].update(weight=-0.1), "weight"),
    (lambda b: b["experts"]["text"].update(weight=float("nan")), "weight"),
    (lambda b: b["experts"]["text"].update(temprature=1.0), "temperature, weight"),
    (lambda b: b.update(prior=[1.0, 0.0, 1, 1, 1, 1, 1]), "prior"),
    (lambda b: b.update(prior=[1.0, 1.0]), "7 classes"),
    (lambda b: b.update(class_map="face7->nowhere"), "unknown"),
    (lambda b: b.update(class_map="face7->iemocap6"), "maps onto"),
    (lambda b: b.update(experts={}), "non-empty"),
])
def test_invalid_blocks(change, match: str) -> None:
    block = fusion_block({"text": 1.0, "visual": 1.0}, PRIOR, class_map="face7->meld7")
    change(block)
    with pytest.raises(CheckpointError, match=match):
        validate_fusion_block(block, MELD7)


def test_iemocap_checkpoint(tmp_path: Path) -> None:
    d = _checkpoint(tmp_path, IEMOCAP6)
    block = fusion_block({"visual": 1.2}, [648, 1084, 1708, 1103, 1041, 1849], class_map="meld7->iemocap6")
    write_fusion(d, block)
    assert read_fusion(d)["class_map"] == "meld7->iemocap6"
    with pytest.raises(CheckpointError, match="maps onto"):
        write_fusion(d, dict(block, class_map="face7->meld7"))
    assert read_fusion(d) == block  # a refused write leaves the manifest as it was
    with pytest.raises(CheckpointError, match="without a temperature"):
        fusion_block({"text": 1.0}, PRIOR, weights={"audio": 1.0})
