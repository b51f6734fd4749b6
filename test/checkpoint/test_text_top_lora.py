"""LoRA on the fine-tuned text layers: only the factors are trained and stored, and restoring them gives the trained
model's outputs (tiny BERT and tiny MPNet from the session fixtures)."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from text_top_fixtures import CFG, DIMS, make_tiny_mpnet, model_inputs

from synctva_ros.checkpoint import (build_text_top, load_base_layers, load_text_top_checkpoint,
                                    save_text_top_checkpoint)
from synctva_ros.checkpoint.text_top_lora import TARGETS, add_lora, has_lora, lora_factors
from synctva_ros.model.synctva import SyncTVA


def _lora_model(encoder, rank: int = 2) -> SyncTVA:
    """A Sync-TVA whose top 2 layers carry LoRA factors moved away from their zero start (a stand-in for training)."""
    torch.manual_seed(0)
    model = SyncTVA(CFG, DIMS)
    model.attach_text_top(build_text_top(str(encoder), 1, 2))
    add_lora(model.text_top, rank)
    with torch.no_grad():
        for name, p in model.text_top.named_parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory):
    return make_tiny_mpnet(tmp_path_factory.mktemp("lora_mpnet") / "mpnet")


@pytest.mark.parametrize("which", ["bert", "mpnet"])
def test_lora_factors_round_trip_to_the_trained_outputs(bert, tiny_mpnet, tmp_path, which):
    encoder = bert if which == "bert" else tiny_mpnet
    model = _lora_model(encoder)
    trained = [n for n, p in model.text_top.named_parameters() if p.requires_grad]
    assert trained and all(".lora_" in n or n == "special" for n in trained)  # the pretrained layers stay frozen
    inp = model_inputs()
    with torch.no_grad():
        ref = model(*inp)
    d = save_text_top_checkpoint(tmp_path / "ck", model, {"name": "t"}, dtype=torch.float32)
    with safe_open(str(d / "model.safetensors"), "pt") as fh:
        keys = set(fh.keys())
    factors = {k for k in keys if k.startswith("text_encoder.lora.")}
    assert len(factors) == 2 * 2 * len(TARGETS)  # A and B, 2 layers, 6 maps each
    assert not any(k.startswith("text_encoder.encoder.") for k in keys)  # no dense delta is stored
    loaded, man = load_text_top_checkpoint(d, base=str(encoder))
    assert man["text_top"]["lora"] == {"rank": 2, "alpha": 4.0, "targets": list(TARGETS)}
    assert not has_lora(loaded.text_top)  # merged into plain layers: no peft at inference
    with torch.no_grad():
        got = loaded(*inp)
    for g, r in zip(got, ref):
        assert torch.allclose(g, r, atol=1e-5)
    base = build_text_top(str(encoder), 1, 2)
    with torch.no_grad():
        plain = base(inp[0], inp[1])
        assert (loaded.text_top(inp[0], inp[1]) - plain).abs().max() > 1e-3  # the factors changed the layers


def test_factors_are_much_smaller_than_dense_deltas(bert):
    model = _lora_model(bert, rank=2)
    stored = sum(t.numel() for t in lora_factors(model.text_top).values())
    dense = sum(t.numel() for t in build_text_top(str(bert), 1, 2).hf_state().values())
    assert stored < dense / 3


def test_missing_misshapen_or_extra_factors_are_refused(bert):
    from synctva_ros.checkpoint.text_top_lora import lora_deltas

    model = _lora_model(bert)
    factors = lora_factors(model.text_top)
    _, _, base_state = load_base_layers(str(bert), 1, 2)
    keys, entry = list(base_state), {"rank": 2, "alpha": 4.0, "targets": list(TARGETS)}
    dense = lora_deltas(factors, base_state, keys, entry)
    assert set(dense) == set(keys) and sum(bool(v.abs().sum()) for v in dense.values()) == 2 * len(TARGETS)
    key = next(k for k in factors if k.endswith(".A"))
    for bad, msg in (({k: v for k, v in factors.items() if k != key}, "expected"),  # one factor missing
                     ({**factors, key: torch.zeros(3, factors[key].shape[1])}, "expected"),  # another rank
                     ({**factors, "lora.encoder.layer.9.intermediate.dense.A": factors[key]}, "no layer weight")):
        with pytest.raises(ValueError, match=msg):
            lora_deltas(bad, base_state, keys, entry)
    with pytest.raises(ValueError, match="LoRA targets"):  # a layer without factors at all
        lora_deltas({k: v for k, v in factors.items() if ".layer.1." not in k}, base_state, keys, entry)


def test_add_lora_refuses_a_bad_rank_and_a_second_injection(bert):
    top = build_text_top(str(bert), 1, 2)
    with pytest.raises(ValueError, match="rank"):
        add_lora(top, 0)
    add_lora(top, 2)
    with pytest.raises(ValueError, match="already"):
        add_lora(top, 2)
