"""The base encoder's pretrained top layers (checkpoint/text_top_base.py): spec, identity, weights, calibration."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from synctva_ros.checkpoint import build_text_top, load_base_layers, special_token_states
from synctva_ros.core.hashing import file_sha256
from synctva_ros.features.text import TextEncoder


def test_layers_from_a_directory_and_from_an_encoder_agree(bert: Path):
    spec, ident, state = load_base_layers(str(bert), text_layer=1, num_layers=2)
    assert spec["layers"] == [1, 2] and spec["text_layer"] == 1
    assert (spec["hidden"], spec["heads"], spec["intermediate"]) == (32, 2, 64)
    assert ident["weights_sha256"] == file_sha256(bert / "model.safetensors")
    assert ident["model_type"] == "bert" and ident["name"] == str(bert)
    on_disk = load_file(str(bert / "model.safetensors"))
    assert len(state) == 2 * 8 * 2  # 2 layers x 8 sub-modules x (weight, bias)
    for key, t in state.items():
        assert torch.equal(t, on_disk[ident["prefix"] + key].float()), key
    enc = TextEncoder(str(bert), layer=1)
    spec2, ident2, state2 = load_base_layers(enc, text_layer=1, num_layers=2, name="tiny")
    assert spec2 == spec and ident2["name"] == "tiny"
    assert ident2["weights_sha256"] == ident["weights_sha256"] == enc.identity()["weights_sha256"]
    assert state2.keys() == state.keys() and all(torch.equal(state2[k], state[k]) for k in state)


def test_negative_text_layer_counts_from_the_top(bert: Path):
    spec, _, _ = load_base_layers(str(bert), text_layer=-2, num_layers=1)
    assert spec["layers"] == [2] and spec["text_layer"] == -2


def test_layer_counts_outside_the_encoder_and_missing_weights_are_refused(bert: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="exceeds"):
        build_text_top(str(bert), 2, 2)
    with pytest.raises(ValueError, match="num_layers"):
        load_base_layers(str(bert), 1, 0)
    with pytest.raises(FileNotFoundError, match="no weight file"):
        load_base_layers(str(tmp_path), 1, 1)  # a directory without model.safetensors


def test_special_states_are_one_row_per_special_token(bert: Path):
    enc = TextEncoder(str(bert))
    states = special_token_states(enc, 1, ["Okay.", "What time is it?"])
    assert states.shape == (2, 32) and states.dtype == torch.float32  # [CLS], [SEP]
    assert not torch.allclose(states[0], states[1])
    with pytest.raises(ValueError, match="non-empty"):
        special_token_states(enc, 1, ["", "   "])
