"""synctva evaluate: offline scoring of a real bag (made by make_bag) with a trained checkpoint."""

from __future__ import annotations

import json

import pytest

from synctva_ros.bags.make_bag import make_bag
from synctva_ros.cli import main as cli_main
from synctva_ros.config import load_config
from synctva_ros.evaluation.offline import evaluate


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory, meld_sample_csv):
    out = tmp_path_factory.mktemp("bag") / "sample"
    make_bag(meld_sample_csv, out, max_utterances=4, size=(64, 48), fps=10)
    return out


def test_evaluate_bag_scores_every_utterance_deterministically(small_bag, tiny_checkpoint, tmp_path):
    cfg = load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint)})
    a = evaluate(small_bag, cfg, out_dir=tmp_path, verbose=False)
    b = evaluate(small_bag, cfg, verbose=False)
    assert a["utterances"] == 4 and a["predicted"] == 4 and a["dropped_windows"] == 0
    assert [r["probabilities"] for r in a["rows"]] == [r["probabilities"] for r in b["rows"]]
    assert 0.0 <= a["metrics"]["weighted_f1"] <= 1.0 and a["metrics"]["n"] == 4
    assert (tmp_path / "report_confusion.png").stat().st_size > 1000
    assert all(r["latency_s"] > 0 for r in a["rows"])


def test_cli_evaluate_csv_writes_json(tiny_checkpoint, meld_sample_csv, tmp_path):
    out = tmp_path / "r.json"
    rc = cli_main(["evaluate", str(meld_sample_csv), "--checkpoint", str(tiny_checkpoint), "--limit", "3",
                   "--json", str(out), "--out", str(tmp_path)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["predicted"] == 3 and set(rep["metrics"]) >= {"accuracy", "weighted_f1", "per_class", "confusion"}
