"""Seed lists and the multi-seed summary (mean, sample standard deviation) against numbers worked by hand."""

from __future__ import annotations

import json
import math

import pytest

from synctva_ros.training.seeds import parse_seeds, summarise_seeds, write_seeds_report


def _run(wf1, mf1, acc, report=True):
    m = {"weighted_f1": wf1, "macro_f1": mf1, "accuracy": acc}
    return {"valid": m, "report": dict(m) if report else None, "best_epoch": 3, "train_s": 1.5}


def test_parse_seeds():
    assert parse_seeds("0, 1,2") == [0, 1, 2] and parse_seeds([4]) == [4]
    for bad in ("", "1,1", "-1", "a,b"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_summary_by_hand(tmp_path):
    runs = [_run(0.5, 0.2, 0.6), _run(0.7, 0.4, 0.6)]
    s = summarise_seeds(runs)
    wf1 = s["valid"]["weighted_f1"]
    # mean 0.6; sample std sqrt(((0.5-0.6)^2 + (0.7-0.6)^2) / 1) = sqrt(0.02)
    assert wf1["mean"] == pytest.approx(0.6) and wf1["std"] == pytest.approx(math.sqrt(0.02))
    assert (wf1["min"], wf1["max"], wf1["values"]) == (0.5, 0.7, [0.5, 0.7])
    assert s["report"]["accuracy"]["std"] == 0.0 and s["report"]["macro_f1"]["mean"] == pytest.approx(0.3)
    assert summarise_seeds([_run(0.5, 0.2, 0.6)])["valid"]["weighted_f1"]["std"] == 0.0
    assert "report" not in summarise_seeds([_run(0.5, 0.2, 0.6), _run(0.5, 0.2, 0.6, report=False)])
    path = write_seeds_report(tmp_path, [0, 1], runs, {"split_seed": 0})
    doc = json.loads(path.read_text())
    assert doc["seeds"] == [0, 1] and doc["split_seed"] == 0 and doc["summary"] == s
    assert doc["runs"][1] == {"seed": 1, "out_dir": None, "best_epoch": 3, "train_s": 1.5,
                              "valid": runs[1]["valid"], "report": runs[1]["report"]}
