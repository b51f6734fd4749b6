"""``synctva calibrate``: temperatures and weights of the product of experts fitted on labelled bags.

A real bag (espeak-ng speech, staged face photographs of each utterance's label) replayed through the real
pipeline with the shipped checkpoint, plus the fitting itself on seeded synthetic expert outputs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.checkpoint.fusion import default_fusion_block, read_fusion
from synctva_ros.cli import main
from synctva_ros.config import load_config
from synctva_ros.evaluation.calibrate import MIN_WINDOWS, Observations, fit_fusion
from synctva_ros.model.class_maps import IEMOCAP6, MELD7

ROOT = Path(__file__).resolve().parents[2]
FACES_CSV = Path(os.environ.get("SYNCTVA_DATA", ROOT.parent / "shared" / "data")) / "faces" / "labels.csv"
DEMO_CSV = ROOT / "data" / "demo" / "meld_dev_sample.csv"
CKPT = ROOT / "models" / "meld_minilm"


def _observations(n: int, classes: int, seed: int = 0) -> Observations:
    """Seeded expert outputs: an over-confident model right 60 % of the time, a face right 80 % of the time."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    guess = np.where(rng.random(n) < 0.6, y, rng.integers(0, classes, n))
    model = rng.normal(0, 1, (n, classes)) + 8.0 * np.eye(classes)[guess]  # T = 1 is far too sharp
    face_y = y if classes == 7 else rng.integers(0, 7, n)
    seen = np.where(rng.random(n) < 0.8, face_y, rng.integers(0, 7, n))
    visual = np.full((n, 7), 0.05)
    visual[np.arange(n), seen] = 0.7
    visual /= visual.sum(1, keepdims=True)
    return Observations(model, visual, rng.random(n) < 0.9, y)


def test_fit_fusion_calibrates_the_model_and_weighs_the_face() -> None:
    obs = _observations(400, 7)
    block, report = fit_fusion(obs, default_fusion_block(MELD7), MELD7)
    assert block["experts"]["model"]["temperature"] > 2.0  # the over-confident network is softened
    assert block["experts"]["model"]["fit"]["source"] == "calibrate"
    assert block["experts"]["visual"]["weight"] > 0.1  # an informative face keeps a weight
    assert report["after"]["nll"] < report["before"]["nll"]
    assert report["windows"] == 400 and report["windows_with_face"] == int(obs.has_face.sum())


def test_fit_fusion_through_the_iemocap_class_map_and_too_few_windows() -> None:
    obs = _observations(200, 6, seed=1)
    block, report = fit_fusion(obs, default_fusion_block(IEMOCAP6), IEMOCAP6)
    assert block["experts"]["visual"]["fit"]["class_map"] == "meld7->iemocap6"
    assert report["after"]["nll"] <= report["before"]["nll"] + 1e-9
    few = Observations(obs.model[:MIN_WINDOWS - 1], obs.visual[:MIN_WINDOWS - 1], obs.has_face[:MIN_WINDOWS - 1],
                       obs.labels[:MIN_WINDOWS - 1])
    with pytest.raises(ValueError, match="at least 10"):
        fit_fusion(few, default_fusion_block(IEMOCAP6), IEMOCAP6)


@pytest.mark.skipif(not FACES_CSV.is_file(), reason=f"no labelled faces at {FACES_CSV}")
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_calibrate_command_writes_a_calibrated_copy(tmp_path: Path) -> None:
    from synctva_ros.bags.make_bag import make_bag  # deferred: rosbags, only this test writes a bag
    from synctva_ros.pipeline import EmotionPipeline  # deferred: torch and the extractors

    bag = tmp_path / "bag"
    make_bag(DEMO_CSV, bag, max_utterances=12, fps=5.0, size=(640, 480), faces=FACES_CSV)
    before = (CKPT / "manifest.json").read_bytes()
    out = tmp_path / "calibrated"
    assert main(["calibrate", str(bag), "--profile", "demo", "--checkpoint", str(CKPT), "--out", str(out)]) == 0
    assert (CKPT / "manifest.json").read_bytes() == before  # the source checkpoint is untouched
    block = read_fusion(out)
    assert block["experts"]["model"]["fit"]["source"] == "calibrate" and block["experts"]["model"]["fit"]["n"] >= 10
    cfg = load_config()
    cfg.runtime.checkpoint = str(out)
    pipe = EmotionPipeline(cfg)  # the copy loads, integrity record included, and fuses with its own block
    assert pipe.fusion_from_manifest and pipe.fusion.temperatures["model"] == pytest.approx(
        block["experts"]["model"]["temperature"])
    pipe.close()
    # exists: refused
    assert main(["calibrate", str(bag), "--profile", "demo", "--checkpoint", str(CKPT), "--out", str(out)]) == 2
    json.dumps(block)  # JSON-clean
