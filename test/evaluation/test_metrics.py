from __future__ import annotations

import json

import numpy as np
import pytest

from synctva_ros.evaluation.metrics import classification_metrics, confusion, latency_stats, plot_confusion
from synctva_ros.evaluation.report import format_table, make_report, write_report

NAMES = ["neutral", "joy", "anger"]


def test_metrics_by_hand():
    y = [0, 0, 0, 1, 1, 2]
    p = [0, 0, 1, 1, 2, 2]
    m = classification_metrics(y, p, NAMES)
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    # neutral: P=1, R=2/3 -> F1 0.8; joy: P=1/2, R=1/2 -> 0.5; anger: P=1/2, R=1 -> 2/3
    f1 = {"neutral": 0.8, "joy": 0.5, "anger": 2 / 3}
    for c, v in f1.items():
        assert m["per_class"][c]["f1"] == pytest.approx(v)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert m["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    json.dumps(m)


def test_absent_class_and_errors():
    m = classification_metrics([0, 0], [0, 0], NAMES)
    assert m["accuracy"] == 1.0 and m["per_class"]["anger"]["support"] == 0 and m["per_class"]["anger"]["f1"] == 0
    assert confusion([0, 2], [2, 2], 3).tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 1]]
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], NAMES)
    with pytest.raises(ValueError):
        classification_metrics([0, 3], [0, 0], NAMES)
    with pytest.raises(ValueError):
        classification_metrics([], [], NAMES)


def test_confusion_png(tmp_path):
    import matplotlib.image as mpimg

    path = plot_confusion([[5, 1, 0], [2, 3, 0], [0, 0, 0]], NAMES, tmp_path / "sub" / "cm.png", title="dev")
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    with pytest.raises(ValueError):
        plot_confusion([[1, 2], [3, 4]], NAMES, tmp_path / "bad.png")


def test_latency_stats(caplog):
    x = np.arange(1, 101) / 1000.0
    s = latency_stats(list(x) + [float("nan")])
    assert s["n"] == 100 and s["p50"] == pytest.approx(np.percentile(x, 50)) and s["max"] == pytest.approx(0.1)
    assert s["p99"] > s["p90"] > s["p50"]
    assert latency_stats([]) == {"n": 0}
    assert any("1 non-finite latency" in r.message for r in caplog.records)  # the NaN was reported


def test_report_table_and_files(tmp_path):
    m = classification_metrics([0, 1, 2, 2], [0, 1, 2, 1], NAMES)
    rep = make_report(m, name="meld dev", latency={"p50": 0.01}, extra={"checkpoint": "x"})
    table = format_table(m, title="meld dev")
    assert "weighted F1" in table and "anger" in table and f"{100 * m['weighted_f1']:6.1f}" in table
    paths = write_report(rep, tmp_path, "r")
    assert json.loads(paths["json"].read_text())["checkpoint"] == "x"
    assert paths["png"].exists() and "accuracy" in paths["txt"].read_text()
    with pytest.raises(TypeError):
        make_report(m, extra={"bad": object()})
