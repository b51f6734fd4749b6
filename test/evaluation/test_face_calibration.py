"""``calibrate_face_temperature`` with a stand-in expert (no weights needed) on generated images."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from synctva_ros.evaluation.face_calibration import calibrate_face_temperature
from synctva_ros.features.faces.experts import MELD_ORDER
from synctva_ros.model.experts import log_softmax

LABELS = ("neutral", "happiness", "anger", "sadness", "surprise")


class OverconfidentExpert:
    """Reads the true class from the image's grey level and answers with overconfident, noisy probabilities;
    a black image has no face."""

    experts = ("stub",)
    detector = SimpleNamespace(name="stub")

    def __init__(self, t_true: float = 3.0) -> None:
        self.t_true, self.rng = t_true, np.random.default_rng(0)

    def __call__(self, image: np.ndarray, track: bool = True) -> list[SimpleNamespace]:
        level = int(image[0, 0, 0])
        if level == 0:
            return []
        z = self.rng.normal(size=7) * 1.5
        z[level // 10 - 1] += 1.5
        probs = np.exp(log_softmax(z * self.t_true))  # calibrated logits z, sharpened by t_true
        return [SimpleNamespace(area=1.0, probs=probs.astype(np.float32))]


@pytest.fixture()
def image_csv(tmp_path: Path) -> Path:
    names = {"happiness": "joy", "anger": "anger", "sadness": "sadness", "neutral": "neutral",
             "surprise": "surprise"}
    rows = []
    for i in range(240):
        lab = LABELS[i % len(LABELS)]
        level = 0 if i % 40 == 7 else 10 * (MELD_ORDER.index(names[lab]) + 1)
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8, 3), level, np.uint8))
        rows.append((f"{i}.png", lab))
    rows.append(("0.png", "contempt"))
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "emotion"])
        w.writerows(rows)
    return tmp_path / "labels.csv"


def test_calibration_report(image_csv: Path) -> None:
    r = calibrate_face_temperature(image_csv, limit=0, seed=1, expert=OverconfidentExpert())
    assert r["n_images"] == 240 and r["no_face"] == 6 and r["skipped"] == {"contempt": 1}
    assert r["n_fit"] + r["held_out"]["n"] == 234
    assert r["temperature"] > 1.5  # the stand-in is overconfident by 3
    before, after = r["held_out"]["before"], r["held_out"]["after"]
    assert after["nll"] < before["nll"] and after["ece"] < before["ece"]
    assert after["accuracy"] == before["accuracy"]


def test_bad_fraction(image_csv: Path) -> None:
    with pytest.raises(ValueError, match="fit_fraction"):
        calibrate_face_temperature(image_csv, fit_fraction=1.0, expert=OverconfidentExpert())
