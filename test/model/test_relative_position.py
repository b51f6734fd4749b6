"""MPNet's relative position bias in the fine-tuned text layers (model/relative_position.py, model/text_top.py).

Runs everywhere: a tiny random MPNet (``text_top_fixtures.make_tiny_mpnet``) stands in for all-mpnet-base-v2
(whose fidelity is measured in ``test_text_top_mpnet.py`` when it is installed). The bias table of the tiny
model is drawn large, so a wrong position shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from text_top_fixtures import make_tiny_mpnet

from synctva_ros.checkpoint import build_text_top, load_base_layers
from synctva_ros.features.torchvision_compat import ensure_torchvision
from synctva_ros.model.relative_position import relative_position_bucket, sequence_positions
from synctva_ros.model.text_top import HF_LAYER_NAMES, TextTopLayers


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mpnet(tmp_path_factory.mktemp("tiny_mpnet"))


def _hf(path: Path, *texts: str):
    """All hidden states ``(L+1, T, F)`` of one sequence (a pair when two texts) and its special-token mask."""
    ensure_torchvision()
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    enc = tok(*texts, return_tensors="pt", return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask")[0].bool()
    with torch.no_grad():
        out = AutoModel.from_pretrained(str(path)).eval()(**enc, output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0], special


def test_buckets_equal_mpnets_own():
    ensure_torchvision()
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    rel = torch.arange(-600, 601)[None, :] - torch.arange(0, 3)[:, None]
    for buckets, dist in ((32, 128), (16, 64), (8, 20)):
        ours = relative_position_bucket(rel, buckets, dist)
        assert torch.equal(ours, MPNetEncoder.relative_position_bucket(rel, buckets, dist))
        assert int(ours.min()) >= 0 and int(ours.max()) < buckets


def test_positions_put_tokens_back_where_they_were():
    # example 0: 2 prefix states, 3 nodes; example 1: no prefix, 1 node (padding after each part)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    pm = torch.tensor([[1, 1], [0, 0]], dtype=torch.bool)
    pos = sequence_positions(mask, pm, 2)
    #                       <s> </s> | prefix | nodes
    assert pos[0].tolist() == [0, 6, 1, 2, 3, 4, 5]
    assert pos[1].tolist()[:2] == [0, 2] and pos[1, 4].item() == 1  # <s> 0, node 1, </s> 2
    assert sequence_positions(mask, None, 0)[0].tolist() == [1, 2, 3]


def test_layers_equal_the_encoders_own_layers_with_the_true_special_states(tiny_mpnet):
    h, special = _hf(tiny_mpnet, "Oh my god, I can't believe you did that!")
    top = build_text_top(str(tiny_mpnet), text_layer=1, num_layers=2).eval()
    assert top.spec["model_type"] == "mpnet" and top.spec["relative_buckets"] == 32
    assert top.spec["special_tokens"] == 2 and top.rel_bias.abs().sum() > 0
    with torch.no_grad():
        top.special.copy_(h[1][special])  # <s>, </s> of this very text: then the output is exact
        x = h[1][~special][None]
        y = top(x, torch.ones(1, x.shape[1], dtype=torch.bool))
        assert torch.allclose(y[0], h[-1][~special], atol=1e-5)
        # padded in a batch with a shorter text: the same output for the real nodes
        xb = torch.cat([x, torch.cat([x[:, :3], torch.full_like(x[:, 3:], float("nan"))], 1)])
        mb = torch.ones(2, x.shape[1], dtype=torch.bool)
        mb[1, 3:] = False
        yb = top(xb, mb)
        assert torch.allclose(yb[0], y[0], atol=1e-6) and torch.isfinite(yb[1, :3]).all()
        top.rel_bias.zero_()  # without the bias the layers are not the encoder's
        assert not torch.allclose(top(x, torch.ones(1, x.shape[1], dtype=torch.bool))[0], h[-1][~special], atol=1e-2)


def test_context_prefix_at_its_input_positions_gives_the_encoders_own_layers(tiny_mpnet):
    """``<s> context </s></s> utterance </s>``: the prefix is every token between ``<s>`` and the utterance."""
    h, special = _hf(tiny_mpnet, "Ross: we were on a break!", "you're unbelievable")
    n = h.shape[1]
    first = int((special.nonzero()[2]).item()) + 1  # after </s></s>
    nodes = torch.zeros(n, dtype=torch.bool)
    nodes[first:n - 1] = True
    top = build_text_top(str(tiny_mpnet), text_layer=0, num_layers=3, context_keys=True).eval()
    with torch.no_grad():
        top.special.copy_(h[0][[0, n - 1]])
        x, prefix = h[0][nodes][None], h[0][1:first][None]
        pm = torch.cat([torch.ones(1, prefix.shape[1], dtype=torch.bool), torch.zeros(1, 2, dtype=torch.bool)], 1)
        prefix = torch.cat([prefix, torch.full((1, 2, h.shape[-1]), 1e3)], 1)  # masked padding changes nothing
        y = top(x, torch.ones(1, x.shape[1], dtype=torch.bool), prefix, pm)
    assert torch.allclose(y[0], h[-1][nodes], atol=1e-5)


def test_bert_specs_and_names_are_unchanged(bert):
    spec, ident, state = load_base_layers(str(bert), 1, 2)
    assert set(spec) == {"hidden", "heads", "intermediate", "act", "eps", "dropout", "layers", "text_layer"}
    top = TextTopLayers({**spec, "special_tokens": 2})
    assert set(top.spec) == set(spec) | {"special_tokens", "context_keys"}
    assert top.frozen_hf_keys() == [] and top.rel_bias.numel() == 0 and "rel_bias" not in top.state_dict()
    assert set(state) == {f"encoder.layer.{i}.{s}.{leaf}" for i in (1, 2) for s in HF_LAYER_NAMES.values()
                          for leaf in ("weight", "bias")}


def test_onnx_export_with_relative_positions_matches_torch(tiny_mpnet, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    top = build_text_top(str(tiny_mpnet), 1, 2, context_keys=True).eval()
    g = torch.Generator().manual_seed(0)
    x, p = torch.randn(2, 5, 32, generator=g), torch.randn(2, 4, 32, generator=g)
    m = torch.arange(5)[None] < torch.tensor([[5], [2]])
    pm = torch.arange(4)[None] < torch.tensor([[1], [4]])
    path = tmp_path / "top.onnx"
    names = ["x", "mask", "prefix", "prefix_mask"]
    torch.onnx.export(top, (x, m, p, pm), str(path), input_names=names, output_names=["y"], opset_version=18,
                      dynamo=False, dynamic_axes={n: {0: "b", 1: f"n_{n}"} for n in names})
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x2, p2 = torch.randn(3, 7, 32, generator=g), torch.randn(3, 6, 32, generator=g)
    m2 = torch.arange(7)[None] < torch.tensor([[7], [3], [1]])
    pm2 = torch.arange(6)[None] < torch.tensor([[6], [0], [2]])
    got = sess.run(None, {"x": x2.numpy(), "mask": m2.numpy(), "prefix": p2.numpy(), "prefix_mask": pm2.numpy()})[0]
    with torch.no_grad():
        ref = top(x2, m2, p2, pm2)
    assert np.allclose(got[m2.numpy()], ref[m2].numpy(), atol=1e-4)
