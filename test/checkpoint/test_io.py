from __future__ import annotations

import json

import pytest
import torch

from synctva_ros.checkpoint import CheckpointError, load_checkpoint, read_manifest, save_checkpoint
from synctva_ros.config import ModelConfig
from synctva_ros.model.synctva import SyncTVA

DIMS = {"text": 6, "audio": 5, "visual": 4}
CFG = ModelConfig(hidden=8, heads=2, graph_layers=1, dropout=0.0)
TEXT_ID = {"name": "all-MiniLM-L6-v2", "revision": "abc", "max_tokens": 64}
AUDIO_ID = {"feature_set": "eGeMAPSv02", "sample_rate": 16000}


def _inputs(b: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = []
    for d, n in ((6, 5), (5, 4), (4, 3)):
        out += [torch.randn(b, n, d, generator=g), torch.ones(b, n, dtype=torch.bool),
                torch.sort(torch.rand(b, n, generator=g), 1).values]
    return out


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = SyncTVA(CFG, DIMS, {"text": True, "audio": True, "visual": False}).eval()
    extra = {"text_encoder.layer.0.delta": torch.arange(3.0)}
    save_checkpoint(tmp_path / "ck", model, {"name": "test", "extractors": {"text": TEXT_ID, "audio": AUDIO_ID},
                                             "metrics": {"weighted_f1": 0.5}}, extra)
    return tmp_path / "ck", model


def test_round_trip_gives_identical_outputs(saved):
    path, model = saved
    loaded, man = load_checkpoint(path, {"text": TEXT_ID, "audio": AUDIO_ID, "visual": {"any": 1}})
    inp = _inputs()
    for a, b in zip(model(*inp), loaded(*inp)):
        assert torch.equal(a, b)
    assert man["active"] == {"text": True, "audio": True, "visual": False}
    assert man["class_names"] == CFG.class_names and man["metrics"] == {"weighted_f1": 0.5}
    assert torch.equal(man["_extra_tensors"]["text_encoder.layer.0.delta"], torch.arange(3.0))
    assert loaded.active["visual"] is False
    from safetensors.torch import load_file

    assert not any(k.startswith("msde.visual.") for k in load_file(str(path / "model.safetensors")))


def test_refuses_mismatched_extractor(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match=r"text.*\['revision'\]"):
        load_checkpoint(path, {"text": dict(TEXT_ID, revision="other")})
    with pytest.raises(CheckpointError, match=r"audio.*\['feature_set'\]"):
        load_checkpoint(path, {"audio": dict(AUDIO_ID, feature_set="IS10")})


def test_corrupt_and_missing_files(saved, tmp_path):
    path, _ = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_wrong_format_and_missing_tensors(saved, tmp_path):
    path, model = saved
    man = json.loads((path / "manifest.json").read_text())
    man["format"] = 99
    (path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(CheckpointError, match="format"):
        read_manifest(path)
    from safetensors.torch import save_file

    man["format"] = 1
    (path / "manifest.json").write_text(json.dumps(man))
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("fusion.classifier")}
    state["bogus.weight"] = torch.zeros(1)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing \['fusion.classifier.*unexpected \['bogus.weight'\]"):
        load_checkpoint(path)


def test_extra_tensor_prefix_enforced(tmp_path):
    model = SyncTVA(CFG, DIMS)
    with pytest.raises(ValueError, match="text_encoder."):
        save_checkpoint(tmp_path / "x", model, {}, {"other.w": torch.zeros(1)})
