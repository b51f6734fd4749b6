from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from synctva_ros.checkpoint import load_checkpoint, read_manifest
from synctva_ros.training.config import load_training_config
from synctva_ros.training.train import RESUME_FILE, train, train_from_file

SMALL = ["model.hidden=16", "model.heads=2", "model.graph_layers=1", "features.text_max_tokens=16",
         "features.audio_max_nodes=8", "training.batch_size=8", "training.progress=false", "training.lr=3e-3"]


def _cfg(tiny_cache, out, *extra):
    return load_training_config(None, [f"training.cache_dir={tiny_cache}", f"training.out_dir={out}",
                                       *SMALL, *extra])


def test_train_end_to_end_writes_a_loadable_checkpoint(tiny_cache, tmp_path):
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "ckpt", "training.epochs=2", "training.name=tiny")
    out = train(tcfg, cfg)
    man = read_manifest(out)
    assert man["name"] == "tiny" and man["class_names"] == list(cfg.model.class_names)
    assert man["active"] == {"text": True, "audio": True, "visual": False}
    assert man["extractors"]["visual"] is None
    assert man["extractors"]["text"]["name"] == "all-MiniLM-L6-v2" and man["extractors"]["audio"]["max_nodes"] == 8
    assert man["dims"]["text"] == 384 and man["dims"]["audio"] == 25
    assert 0 <= man["metrics"]["valid"]["weighted_f1"] <= 1 and man["metrics"]["valid"]["n"] == 21
    assert man["training"]["epochs"] == 2 and len(man["training"]["history"]) == 2
    assert sum(man["training"]["class_counts"].values()) == 21
    model, _ = load_checkpoint(out, expected_extractors=man["extractors"])
    assert model.active["visual"] is False


def test_training_learns_the_tiny_task(tiny_cache, tmp_path):
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "ckpt", "training.epochs=12", "training.patience=12",
                     "model.modality_dropout=0.0", "model.dropout=0.0")
    man = read_manifest(train(tcfg, cfg))
    hist = man["training"]["history"]
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert man["metrics"]["valid"]["accuracy"] > 2 / 7  # clearly above chance (1/7) on unseen phrasings


def test_resume_gives_the_same_result(tiny_cache, tmp_path):
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "a", "training.epochs=3")
    a = train(tcfg, cfg)
    tcfg1, cfg1 = _cfg(tiny_cache, tmp_path / "b", "training.epochs=1")
    train(tcfg1, cfg1)
    tcfg2, cfg2 = _cfg(tiny_cache, tmp_path / "b", "training.epochs=3")
    b = train(tcfg2, cfg2, resume=True)
    ra = torch.load(a / RESUME_FILE, weights_only=True)
    rb = torch.load(b / RESUME_FILE, weights_only=True)
    assert ra["epoch"] == rb["epoch"] == 2
    for k, v in ra["model"].items():
        torch.testing.assert_close(v, rb["model"][k], rtol=0, atol=0)
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads(ra["history"]) == json.loads(rb["history"])


def test_context_turns_and_text_only(tiny_cache, tmp_path):
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "ctx", "training.epochs=1", "model.context_turns=2",
                     "training.modalities=text")
    man = read_manifest(train(tcfg, cfg))
    assert man["active"] == {"text": True, "audio": False, "visual": False}
    assert man["extractors"]["audio"] is None and man["architecture"]["context_turns"] == 2


def test_missing_cache_says_how_to_build(tmp_path):
    tcfg, cfg = load_training_config(None, [f"training.cache_dir={tmp_path}", f"training.out_dir={tmp_path}/o",
                                            *SMALL])
    with pytest.raises(FileNotFoundError, match="synctva cache meld train"):
        train(tcfg, cfg)


def test_train_from_file_reads_the_yaml_then_the_overrides(tiny_cache, tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(f"training:\n  name: from_yaml\n  epochs: 5\n  cache_dir: {tiny_cache}\n"
                        f"  out_dir: {tmp_path / 'yaml_ckpt'}\nprofile: demo\n")
    out = train_from_file(cfg_file, overrides=[*SMALL, "training.epochs=1"])
    man = read_manifest(out)
    assert out == tmp_path / "yaml_ckpt" and man["name"] == "from_yaml"
    assert man["training"]["epochs"] == 1 and len(man["training"]["history"]) == 1  # the override wins
    assert man["architecture"]["hidden"] == 16
