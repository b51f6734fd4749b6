"""Checkpoint integrity (issue 14 item 6): edited manifests and changed weights are refused, naming what differs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from synctva_ros.checkpoint import CheckpointError, load_checkpoint, read_manifest, record_integrity, save_checkpoint
from synctva_ros.checkpoint.integrity import canonical_manifest_sha256, counters
from synctva_ros.checkpoint.fusion import fusion_block, read_fusion, write_fusion
from synctva_ros.config import ModelConfig
from synctva_ros.core.hashing import file_sha256
from synctva_ros.model.synctva import SyncTVA

ROOT = Path(__file__).resolve().parents[2]
DIMS = {"text": 6, "audio": 5, "visual": 4}
CFG = ModelConfig(hidden=8, heads=2, graph_layers=1, dropout=0.0)


@pytest.fixture
def ck(tmp_path) -> Path:
    torch.manual_seed(0)
    model = SyncTVA(CFG, DIMS, {"text": True, "audio": True, "visual": False}).eval()
    return save_checkpoint(tmp_path / "ck", model, {"name": "t", "metrics": {"f1": 0.5}})


def _edit(path: Path, fn) -> None:
    man = json.loads((path / "manifest.json").read_text())
    fn(man)
    (path / "manifest.json").write_text(json.dumps(man, indent=4))  # another layout: the hash is canonical


def test_save_records_the_hashes_and_load_verifies(ck):
    rec = read_manifest(ck)["integrity"]
    assert rec["weights_sha256"] == file_sha256(ck / "model.safetensors")
    assert rec["manifest_sha256"] == canonical_manifest_sha256(read_manifest(ck))
    before = counters()["verified"]
    _edit(ck, lambda m: None)  # re-indented, same content
    _, man = load_checkpoint(ck)
    assert man["_integrity"] == "verified" and counters()["verified"] == before + 1


def test_swapped_class_names_are_refused_naming_the_keys(ck):
    def swap(m):
        for names in (m["class_names"], m["architecture"]["class_names"]):
            names[0], names[1] = names[1], names[0]

    _edit(ck, swap)
    with pytest.raises(CheckpointError, match=r"manifest.json differs .*\['architecture', 'class_names'\]"):
        load_checkpoint(ck)


def test_renamed_class_is_refused(ck):
    def rename(m):
        m["class_names"][0] = m["architecture"]["class_names"][0] = "calm"

    _edit(ck, rename)
    with pytest.raises(CheckpointError, match="integrity"):
        load_checkpoint(ck)


def test_one_flipped_bit_in_the_weights_is_refused(ck):
    data = bytearray((ck / "model.safetensors").read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's bytes: the file still parses
    (ck / "model.safetensors").write_bytes(bytes(data))
    before = counters()["refused"]
    with pytest.raises(CheckpointError, match=r"model.safetensors has sha256 .* was recorded at save"):
        load_checkpoint(ck)
    assert counters()["refused"] == before + 1


def test_nan_weights_are_refused_even_with_a_valid_record(tmp_path):
    model = SyncTVA(CFG, DIMS, {"text": True, "audio": True, "visual": False})
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    save_checkpoint(tmp_path / "nan", model, {})
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(tmp_path / "nan")


def test_malformed_record_is_refused(ck):
    _edit(ck, lambda m: m["integrity"].__setitem__("weights_sha256", "abc"))
    with pytest.raises(CheckpointError, match="weights_sha256.*64 lower-case hex"):
        load_checkpoint(ck)


def test_unrecorded_checkpoint_loads_with_a_warning_and_can_be_sealed(ck, caplog):
    _edit(ck, lambda m: m.pop("integrity"))
    before = counters()["unrecorded"]
    with caplog.at_level(logging.WARNING, logger="synctva_ros.checkpoint.io"):
        _, man = load_checkpoint(ck)
    assert man["_integrity"] == "unrecorded" and counters()["unrecorded"] == before + 1
    assert "no integrity record" in caplog.text
    weights = (ck / "model.safetensors").read_bytes()
    rec = record_integrity(ck)
    assert rec["weights_sha256"] == file_sha256(ck / "model.safetensors")
    assert (ck / "model.safetensors").read_bytes() == weights
    assert load_checkpoint(ck)[1]["_integrity"] == "verified"
    with pytest.raises(CheckpointError, match="already has"):
        record_integrity(ck)


def test_fusion_block_written_after_saving_keeps_the_checkpoint_loadable(ck):
    names = read_manifest(ck)["class_names"]
    write_fusion(ck, fusion_block({"model": 1.3}, [1.0 / len(names)] * len(names)))
    assert read_fusion(ck) is not None
    assert load_checkpoint(ck)[1]["_integrity"] == "verified"


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (ROOT / "models").glob("*/manifest.json")))
def test_shipped_checkpoints_carry_a_record_that_verifies(name):
    man = read_manifest(ROOT / "models" / name)
    assert "integrity" in man, "the shipped manifests are verified too"
    _, loaded = load_checkpoint(ROOT / "models" / name)
    assert loaded["_integrity"] == "verified"
