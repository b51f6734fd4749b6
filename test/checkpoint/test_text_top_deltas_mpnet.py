"""MPNet top layers as checkpoint deltas: round trip with the frozen relative bias table restored from the base.

A tiny random MPNet (``text_top_fixtures.make_tiny_mpnet``) stands in for all-mpnet-base-v2, so this runs
without the real weights; the BERT-style round trip is ``test_text_top_deltas.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from text_top_fixtures import DIMS, finetuned_model, make_tiny_mpnet, model_inputs

from synctva_ros.checkpoint import CheckpointError, load_checkpoint, load_text_top_checkpoint, restore_text_top
from synctva_ros.checkpoint import save_text_top_checkpoint


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mpnet(tmp_path_factory.mktemp("tiny_mpnet_ck"))


def _prefix(b: int = 3, m: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.randn(b, m, DIMS["text"], generator=g), torch.arange(m)[None] < torch.tensor([[m], [2], [0]])


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float16, 1e-3)])
def test_mpnet_delta_round_trip_reproduces_outputs(tiny_mpnet, tmp_path, dtype, atol):
    model = finetuned_model(tiny_mpnet)
    model.text_top.spec["context_keys"] = True  # the context prefix goes through the relative positions too
    inp, (prefix, pm) = model_inputs(), _prefix()
    with torch.no_grad():
        ref = model(*inp, text_prefix=prefix, text_prefix_mask=pm)
    d = save_text_top_checkpoint(tmp_path / "ck", model, {"name": "t"}, dtype=dtype)
    with safe_open(str(d / "model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    assert "text_encoder.encoder.layer.2.attention.attn.q.weight" in keys
    assert not any("relative_attention_bias" in k for k in keys)  # frozen: no delta, restored from the base
    loaded, man = load_text_top_checkpoint(d, base=str(tiny_mpnet))
    spec = man["text_top"]["spec"]
    assert (spec["model_type"], spec["relative_buckets"], spec["relative_max_distance"]) == ("mpnet", 32, 128)
    base_table = load_file(str(tiny_mpnet / "model.safetensors"))["encoder.relative_attention_bias.weight"]
    assert torch.equal(loaded.text_top.rel_bias, base_table)
    with torch.no_grad():
        got = loaded(*inp, text_prefix=prefix, text_prefix_mask=pm)
    for g, r in zip(got, ref):
        assert torch.allclose(g, r, atol=atol)


def test_a_spec_without_the_relative_bias_is_refused(tiny_mpnet, tmp_path):
    d = save_text_top_checkpoint(tmp_path / "ck", finetuned_model(tiny_mpnet), {"name": "t"})
    model, man = load_checkpoint(d)
    man["text_top"]["spec"].pop("relative_buckets")
    with pytest.raises(CheckpointError, match="relative_buckets"):
        restore_text_top(model, man, str(tiny_mpnet))
