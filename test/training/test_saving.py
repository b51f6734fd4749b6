"""Saving a trained model: the size limit refuses before anything is replaced; metrics.json."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from synctva_ros.checkpoint import load_checkpoint
from synctva_ros.config import ModelConfig
from synctva_ros.model.synctva import SyncTVA
from synctva_ros.training.saving import CheckpointTooLarge, metric_summary, save_trained, write_metrics

DIMS = {"text": 32, "audio": 7, "visual": 9}


def _model(hidden: int) -> SyncTVA:
    torch.manual_seed(0)
    return SyncTVA(ModelConfig(hidden=hidden, heads=2, graph_layers=1), DIMS, {"text": True, "audio": True,
                                                                                "visual": False})


def test_save_trained_writes_the_given_state_and_refuses_a_large_one(tmp_path):
    small = _model(16)
    state = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in small.state_dict().items()}
    ids = {"text": {"name": "t"}, "audio": {"feature_set": "a"}, "visual": {"name": "v"}}
    out = save_trained(tmp_path / "ck", small, state, {"name": "s", "metrics": {"valid": {"n": 3}}}, ids, max_mb=30)
    loaded, man = load_checkpoint(out)
    assert man["extractors"]["visual"] is None and man["extractors"]["text"] == {"name": "t"}  # inactive: None
    assert man["metrics"] == {"valid": {"n": 3}} and not (out / ".saving").exists()
    assert all(float(v.float().mean()) == 0.5 for k, v in loaded.state_dict().items() if k.startswith("fusion."))
    assert not all(float(v.float().mean()) == 0.5 for k, v in small.state_dict().items()
                   if k.startswith("fusion."))  # the model passed in keeps its own weights
    before = load_file(str(out / "model.safetensors"))
    big = _model(64)
    size = sum(v.numel() * 4 for v in big.state_dict().values()) / 1e6
    with pytest.raises(CheckpointTooLarge, match=r"over training.max_checkpoint_mb=0.01"):
        save_trained(tmp_path / "ck", big, big.state_dict(), {"name": "b"}, ids, max_mb=0.01)
    assert size > 0.01
    after = load_file(str(out / "model.safetensors"))  # the good checkpoint is still there, unchanged
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in after)
    assert not (tmp_path / "ck" / ".saving").exists()


def test_metric_summary_and_metrics_file(tmp_path):
    m = {"n": 2, "accuracy": 0.5, "weighted_f1": 0.4, "macro_f1": 0.3, "per_class": {}, "confusion": [[1]],
         "class_names": ["a"]}
    assert metric_summary(m) == {k: m[k] for k in ("n", "accuracy", "weighted_f1", "macro_f1", "per_class",
                                                     "confusion")}
    assert metric_summary(None) is None
    path = write_metrics(tmp_path, {"valid": metric_summary(m), "report": None})
    assert json.loads(path.read_text())["valid"]["macro_f1"] == 0.3 and path.name == "metrics.json"
