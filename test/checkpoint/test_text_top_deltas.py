"""Fine-tuned text-encoder top layers as checkpoint deltas: round trip, refusal without them, another base hash."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from text_top_fixtures import CFG, DIMS, finetuned_model, model_inputs

from synctva_ros.checkpoint import (CheckpointError, build_text_top, load_base_layers, load_checkpoint,
                                    load_text_top_checkpoint, restore_text_top, save_text_top_checkpoint)
from synctva_ros.model.synctva import SyncTVA

@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float16, 1e-3)])
def test_delta_round_trip_reproduces_outputs(bert, tmp_path, dtype, atol):
    from safetensors import safe_open

    model = finetuned_model(bert)
    inp = model_inputs()
    with torch.no_grad():
        ref = model(*inp)
    d = save_text_top_checkpoint(tmp_path / "ck", model, {"name": "t"}, dtype=dtype)
    assert model.text_top is not None  # re-attached after saving
    with safe_open(str(d / "model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
        delta = fh.get_tensor("text_encoder.encoder.layer.2.output.dense.weight")
    assert not any(k.startswith("text_top.") for k in keys)
    assert "text_encoder.top.special" in keys and delta.dtype == dtype
    loaded, man = load_text_top_checkpoint(d, base=str(bert))
    assert man["text_top"]["base"]["weights_sha256"] == model.text_top.base["weights_sha256"]
    with torch.no_grad():
        got = loaded(*inp)
    for g, r in zip(got, ref):
        assert torch.allclose(g, r, atol=atol)
    base_w = build_text_top(str(bert), 1, 2).hf_state()["encoder.layer.2.output.dense.weight"]
    assert not torch.allclose(loaded.text_top.hf_state()["encoder.layer.2.output.dense.weight"], base_w)


def test_model_without_restored_layers_refuses_to_run(bert, tmp_path):
    d = save_text_top_checkpoint(tmp_path / "ck", finetuned_model(bert), {"name": "t"})
    model, _ = load_checkpoint(d)
    with pytest.raises(RuntimeError, match="restore_text_top"):
        model(*model_inputs())
    # without the text branch the top layers are not needed
    cfg_off = SyncTVA(CFG, DIMS, {"text": False}).eval()
    assert torch.isfinite(cfg_off(*model_inputs())[0]).all()


def test_refuses_a_base_encoder_with_another_hash(bert, tmp_path):
    from safetensors.torch import save_file

    d = save_text_top_checkpoint(tmp_path / "ck", finetuned_model(bert), {"name": "t"})
    other = tmp_path / "other_bert"
    shutil.copytree(bert, other)
    w = load_file(str(other / "model.safetensors"))
    w["encoder.layer.2.output.dense.weight"] = w["encoder.layer.2.output.dense.weight"] + 0.01
    save_file(w, str(other / "model.safetensors"), metadata={"format": "pt"})
    model, man = load_checkpoint(d)
    with pytest.raises(CheckpointError, match="sha256"):
        restore_text_top(model, man, str(other))
    man.pop("text_top")
    with pytest.raises(CheckpointError, match="text_top"):
        restore_text_top(model, man, str(bert))


def test_saving_with_the_base_state_in_memory_equals_re_reading_it(bert, tmp_path):
    model = finetuned_model(bert)
    _, _, base_state = load_base_layers(str(bert), 1, 2)
    a = load_file(str(save_text_top_checkpoint(tmp_path / "a", model, {"name": "t"}, torch.float16) /
                      "model.safetensors"))
    b = load_file(str(save_text_top_checkpoint(tmp_path / "b", model, {"name": "t"}, torch.float16,
                                               base_state=base_state) / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert b["text_encoder.encoder.layer.1.attention.self.query.weight"].dtype == torch.float16
