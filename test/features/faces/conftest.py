"""Shared fixtures of the face tests: a handful of the labelled photographs in ../shared/data/faces."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.evaluation.faces import read_rgb

_DATA = Path(os.environ.get("SYNCTVA_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))
FACES_DIR = _DATA / "faces"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not (FACES_DIR / "labels.csv").is_file():
        pytest.skip(f"no labelled faces at {FACES_DIR}")
    return FACES_DIR


@pytest.fixture(scope="session")
def photos(faces_dir: Path) -> list[tuple[np.ndarray, str]]:
    """Two photographs of each of neutral, happiness, surprise, anger, sadness (RGB, label)."""
    rows = list(csv.DictReader(open(faces_dir / "labels.csv", encoding="utf-8")))
    out, count = [], {}
    for r in rows:
        lab = r["emotion"]
        if lab in ("neutral", "happiness", "surprise", "anger", "sadness") and count.get(lab, 0) < 2:
            count[lab] = count.get(lab, 0) + 1
            out.append((read_rgb(faces_dir / r["image"]), lab))
    return out
