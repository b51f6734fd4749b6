from __future__ import annotations

import numpy as np
import pytest
import torch

from synctva_ros.model.graphs import CrossModalGraph, cross_adjacency, reference_edges, temporal_adjacency


def test_temporal_adjacency_band_and_mask():
    mask = torch.tensor([[True, True, True, True, False]])
    adj = temporal_adjacency(mask, 1)[0]
    assert adj[0, 0] and adj[0, 1] and not adj[0, 2]
    assert not adj[4].any() and not adj[:, 4].any()


def test_cross_adjacency_matches_reference_and_leaves_no_node_isolated():
    g = torch.Generator().manual_seed(3)
    ta, tb = torch.rand(1, 9, generator=g), torch.rand(1, 4, generator=g)
    ma, mb = torch.ones(1, 9, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool)
    adj = cross_adjacency(ta, ma, tb, mb, 0.05)[0]  # (Nb, Na): a -> b
    ref = reference_edges(ta[0].numpy(), np.arange(9), tb[0].numpy(), np.arange(4), 2, 0.05)["ab"]
    dense = {(int(j), int(i)) for i, j in zip(*adj.nonzero(as_tuple=True))}
    assert dense == {(int(s), int(d)) for s, d in ref.T}
    assert adj.any(dim=0).all() and adj.any(dim=1).all()


@pytest.mark.parametrize("variant", ["gat", "gatv2"])
def test_dense_and_pyg_implementations_agree(variant):
    torch.manual_seed(0)
    graph = CrossModalGraph("text", "visual", 16, 2, 2, 0.0, 2, 0.1, variant).eval()
    g = torch.Generator().manual_seed(5)
    xa, xb = torch.randn(3, 8, 16, generator=g), torch.randn(3, 5, 16, generator=g)
    ta = torch.sort(torch.rand(3, 8, generator=g), 1).values
    tb = torch.sort(torch.rand(3, 5, generator=g), 1).values
    ma, mb = torch.ones(3, 8, dtype=torch.bool), torch.ones(3, 5, dtype=torch.bool)
    ma[1, 5:] = False
    mb[2] = False  # partner modality absent in row 2
    dense = graph(xa, ma, ta, xb, mb, tb, impl="dense")
    ref = graph(xa, ma, ta, xb, mb, tb, impl="pyg")
    for d, r, m in zip(dense[:2], ref[:2], (ma, mb)):
        assert torch.allclose(d[m], r[m], atol=1e-5)
    assert torch.allclose(dense[2], ref[2], atol=1e-5) and torch.allclose(dense[3], ref[3], atol=1e-5)
    assert torch.equal(dense[3][2], torch.zeros(16))


def test_parameters_are_pyg_modules():
    graph = CrossModalGraph("audio", "text", 8, 2, 1, 0.0, 1, 0.1)
    names = [n for n, _ in graph.named_parameters()]
    assert any("att_src" in n for n in names) and any("lin_src" in n for n in names)


def test_bad_arguments():
    with pytest.raises(ValueError):
        CrossModalGraph("a", "b", 10, 3, 1, 0.0, 1, 0.1)
    graph = CrossModalGraph("a", "b", 8, 2, 1, 0.0, 1, 0.1)
    x = torch.zeros(1, 2, 8)
    m = torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(ValueError):
        graph(x, m, torch.zeros(1, 2), x, m, torch.zeros(1, 2), impl="nope")


@pytest.mark.parametrize("inactive", ["a", "b", "both"])
def test_inactive_node_type_skips_its_convs_with_the_same_values(inactive):
    """An inactive branch's node type (absent in every row) gives what computing every conv gives, with less work."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    active = (inactive == "b", inactive == "a")
    pruned = CrossModalGraph("text", "visual", 16, 2, 2, 0.0, 2, 0.1, active=active).eval()
    full = CrossModalGraph("text", "visual", 16, 2, 2, 0.0, 2, 0.1).eval()
    full.load_state_dict(pruned.state_dict())
    with torch.no_grad():
        for p in full.parameters():  # non-zero biases, so a skipped conv's bias would be missed
            p.add_(0.1 * torch.randn_like(p))
        pruned.load_state_dict(full.state_dict())
    g = torch.Generator().manual_seed(5)
    xa, xb = torch.randn(3, 8, 16, generator=g), torch.randn(3, 5, 16, generator=g)
    ta, tb = torch.rand(3, 8, generator=g), torch.rand(3, 5, generator=g)
    ma, mb = torch.ones(3, 8, dtype=torch.bool), torch.ones(3, 5, dtype=torch.bool)
    ma[1, 5:] = False
    # what the full graph sees for an inactive type: no nodes, zero states (SyncTVA masks it in every row)
    fa, fb = (ma & active[0], mb & active[1])
    ref = full(xa * fa.unsqueeze(-1), fa, ta, xb * fb.unsqueeze(-1), fb, tb)
    with FlopCounterMode(display=False) as fc_full:
        full(xa * fa.unsqueeze(-1), fa, ta, xb * fb.unsqueeze(-1), fb, tb)
    with FlopCounterMode(display=False) as fc_pruned:
        out = pruned(xa, ma, ta, xb, mb, tb)
    for o, r in zip(out, ref):
        assert torch.allclose(o, r, atol=1e-6)
    for o, on in zip(out[2:], active):
        assert on or torch.equal(o, torch.zeros_like(o))
    assert fc_pruned.get_total_flops() < 0.6 * fc_full.get_total_flops()
