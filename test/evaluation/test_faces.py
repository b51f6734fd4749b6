"""``evaluate_faces`` and ``synctva evaluate-faces`` on a few real labelled photographs."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from synctva_ros.cli import main
from synctva_ros.evaluation.faces import evaluate_faces, read_face_labels

FACES = Path(os.environ.get("SYNCTVA_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data")) / "faces"


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 rows: two of each of five labels, one contempt (skipped), one blank image (no face)."""
    import cv2
    import numpy as np

    if not (FACES / "labels.csv").is_file():
        pytest.skip("no labelled faces")
    d = tmp_path_factory.mktemp("faces")
    rows = list(csv.DictReader(open(FACES / "labels.csv", encoding="utf-8")))
    picked, count = [], {}
    for r in rows:
        if r["emotion"] in ("neutral", "happiness", "surprise", "anger", "sadness") and count.get(r["emotion"], 0) < 2:
            count[r["emotion"]] = count.get(r["emotion"], 0) + 1
            picked.append((str(FACES / r["image"]), r["emotion"]))
    picked.append((next(str(FACES / r["image"]) for r in rows if r["emotion"] == "contempt"), "contempt"))
    cv2.imwrite(str(d / "blank.png"), np.full((480, 640, 3), 128, np.uint8))
    picked.append(("blank.png", "neutral"))
    with open(d / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "emotion"])
        w.writerows(picked)
    return d / "labels.csv"


def test_read_labels_maps_and_skips(small_csv: Path) -> None:
    rows, skipped = read_face_labels(small_csv)
    assert skipped == {"contempt": 1} and len(rows) == 11
    assert {lab for _, lab in rows} == {"neutral", "joy", "surprise", "anger", "sadness"}


def test_evaluate_faces_report(small_csv: Path, tmp_path: Path) -> None:
    r = evaluate_faces(small_csv, out_dir=tmp_path)
    assert r["n"] == 11 and r["faces_found"] == 10 and r["skipped"] == {"contempt": 1}
    assert 0 <= r["accuracy"] <= 10 / 11 and 0 <= r["weighted_f1"] <= 1 and 0 <= r["macro_f1"] <= 1
    assert set(r["per_class"]) == {"neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"}
    assert Path(r["confusion_png"]).is_file()
    assert r["weights"]["face_api"]["files"]


def test_bad_header(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("path,label\na.jpg,neutral\n")
    with pytest.raises(ValueError, match="image,emotion"):
        read_face_labels(tmp_path / "x.csv")


def test_cli_evaluate_faces(small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r.json"
    assert main(["evaluate-faces", str(small_csv), "--json", str(out), "--out", str(tmp_path),
                 "--experts", "face_api,fer", "--limit", "6"]) == 0
    r = json.loads(out.read_text())
    assert r["n"] == 6 and set(r["experts"]) == {"face_api", "fer"}
    assert '"weighted_f1"' in capsys.readouterr().out


def test_camera_frame_scoring(small_csv: Path) -> None:
    """``frame``: each photograph in a black 640x480 frame, camera rule; the report says which settings."""
    import numpy as np

    from synctva_ros.evaluation.faces import in_frame

    r = evaluate_faces(small_csv, frame=(640, 480), min_face_frac=0.1)
    assert r["n"] == 11 and r["faces_found"] == 10 and r["frame"] == [640, 480] and r["min_face_frac"] == 0.1
    assert r["runtime"] == "onnxruntime"
    big = in_frame(np.full((600, 900, 3), 7, np.uint8), 640, 480)
    assert big.shape == (480, 640, 3) and big[240, 320, 0] == 7 and big[0, 0, 0] == 0  # shrunk to 640x426
    with pytest.raises(ValueError):
        in_frame(big, 0, 480)


def test_cli_evaluate_faces_camera_settings(small_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["evaluate-faces", str(small_csv), "--json", str(out), "--out", str(tmp_path), "--limit", "4",
                 "--frame", "640x480", "--min-face", "0.1", "--runtime", "torch"]) == 0
    r = json.loads(out.read_text())
    assert r["frame"] == [640, 480] and r["runtime"] == "torch" and r["n"] == 4
    with pytest.raises(SystemExit):
        main(["evaluate-faces", str(small_csv), "--frame", "640"])
