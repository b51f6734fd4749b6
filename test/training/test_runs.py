"""Several runs of one recipe (synctva_ros.training.runs): a YAML run, seeds, validation folds; the tiny real cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synctva_ros.checkpoint import read_manifest
from synctva_ros.training.runs import parse_folds, pooled_validation, train_from_file
from test_train import SMALL


def test_train_from_file_reads_the_yaml_then_the_overrides(tiny_cache, tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(f"training:\n  name: from_yaml\n  epochs: 5\n  cache_dir: {tiny_cache}\n"
                        f"  out_dir: {tmp_path / 'yaml_ckpt'}\n  valid_split: dev\nprofile: demo\n")
    out = train_from_file(cfg_file, overrides=[*SMALL, "training.epochs=1"])
    man = read_manifest(out)
    assert out == tmp_path / "yaml_ckpt" and man["name"] == "from_yaml"
    assert man["training"]["epochs"] == 1 and len(man["training"]["history"]) == 1  # the override wins
    assert man["architecture"]["hidden"] == 16
    assert man["training"]["report_split"] == "dev"  # the old key is read as the report split


def test_seeds_write_mean_and_spread(tiny_cache, tmp_path):
    path = train_from_file(None, overrides=[f"training.cache_dir={tiny_cache}", f"training.out_dir={tmp_path / 's'}",
                                            *SMALL, "training.epochs=1"], seeds="0,1")
    doc = json.loads(path.read_text())
    assert path == tmp_path / "s" / "seeds.json" and doc["seeds"] == [0, 1]
    runs = [json.loads((tmp_path / "s" / f"seed_{s}" / "metrics.json").read_text()) for s in (0, 1)]
    for split in ("valid", "report"):
        for metric in ("weighted_f1", "macro_f1", "accuracy"):
            vals = [r[split][metric] for r in runs]
            got = doc["summary"][split][metric]
            assert got["values"] == vals and got["mean"] == pytest.approx(np.mean(vals))
            assert got["std"] == pytest.approx(np.std(vals, ddof=1))
    assert runs[0]["valid_split"] == runs[1]["valid_split"]  # the same held-out dialogues for every seed


def test_folds_hold_out_each_pattern_once_and_pool_by_utterances(tiny_cache, tmp_path):
    path = train_from_file(None, overrides=[f"training.cache_dir={tiny_cache}", f"training.out_dir={tmp_path / 'f'}",
                                            *SMALL, "training.epochs=1", "training.name=cv"], folds="0,1,2")
    doc = json.loads(path.read_text())
    assert path == tmp_path / "f" / "folds.json" and doc["folds"] == ["0", "1", "2"] and doc["seed"] == 0
    runs = [json.loads((tmp_path / "f" / f"fold_{i}" / "metrics.json").read_text()) for i in range(3)]
    held = [read_manifest(tmp_path / "f" / f"fold_{i}")["training"]["validation"]["valid_dialogues"] for i in range(3)]
    assert held == [["0"], ["1"], ["2"]]  # each dialogue validates exactly one fold
    assert read_manifest(tmp_path / "f" / "fold_1")["name"] == "cv_fold1"
    vals = [r["valid"]["weighted_f1"] for r in runs]
    assert doc["summary"]["valid"]["weighted_f1"]["values"] == vals
    assert doc["pooled"]["valid_utterances"] == 21 and doc["pooled"]["weighted_f1"] == pytest.approx(np.mean(vals))
    assert [r["valid_utterances"] for r in doc["runs"]] == [7, 7, 7]


def test_pooled_validation_weighs_folds_by_their_utterances():
    runs = [{"valid": {"weighted_f1": 0.5, "macro_f1": 0.4, "accuracy": 0.6}, "valid_split": {"valid_utterances": 100}},
            {"valid": {"weighted_f1": 0.8, "macro_f1": 0.7, "accuracy": 0.9}, "valid_split": {"valid_utterances": 300}}]
    got = pooled_validation(runs)
    assert got["valid_utterances"] == 400 and got["weighted_f1"] == pytest.approx(0.725)
    assert got["accuracy"] == pytest.approx(0.825)
    with pytest.raises(ValueError, match="validation figures"):
        pooled_validation([{"valid": None, "valid_split": {"valid_utterances": 1}}])


def test_folds_are_parsed_and_checked(tiny_cache, tmp_path):
    assert parse_folds(" Ses01*, Ses02* ,") == ["Ses01*", "Ses02*"] and parse_folds(["a", "b"]) == ["a", "b"]
    for bad in ("", " , ", "a,a"):
        with pytest.raises(ValueError, match="folds"):
            parse_folds(bad)
    with pytest.raises(ValueError, match="not both"):
        train_from_file(None, overrides=[f"training.cache_dir={tiny_cache}"], seeds="0,1", folds="0,1")
    with pytest.raises(ValueError, match="matches 0 of the 3"):
        train_from_file(None, overrides=[f"training.cache_dir={tiny_cache}", f"training.out_dir={tmp_path / 'x'}",
                                         *SMALL, "training.epochs=1"], folds="9")
