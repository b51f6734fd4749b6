from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GATConv, GATv2Conv

from synctva_ros.model.gat import dense_gat_conv


def _random_graph(g: torch.Generator, ns: int, nd: int, self_loops: bool) -> torch.Tensor:
    adj = torch.rand(nd, ns, generator=g) < 0.3
    if self_loops:
        adj |= torch.eye(nd, ns, dtype=torch.bool)
    return adj


@pytest.mark.parametrize("op", [GATConv, GATv2Conv])
@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("bipartite", [True, False])
def test_dense_equals_pyg_on_random_graphs(op, concat, bipartite):
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(2)
    for trial in range(3):
        ns, nd = (7, 5) if bipartite else (6, 6)
        conv = op((10, 11) if bipartite else 10, 4, heads=3, concat=concat, add_self_loops=False).eval()
        x_src = torch.randn(ns, 10, generator=g)
        x_dst = torch.randn(nd, 11, generator=g) if bipartite else x_src
        adj = _random_graph(g, ns, nd, self_loops=not bipartite)
        adj[0] = False  # a target without incoming edges
        dst, src = adj.nonzero(as_tuple=True)
        edge_index = torch.stack([src, dst])
        ref = conv((x_src, x_dst), edge_index) if bipartite else conv(x_src, edge_index)
        out = dense_gat_conv(conv, x_src.unsqueeze(0), x_dst.unsqueeze(0), adj.unsqueeze(0))[0]
        assert out.shape == ref.shape
        assert torch.allclose(out, ref, atol=1e-5), (trial, (out - ref).abs().max())


def test_batched_padding_does_not_leak():
    torch.manual_seed(0)
    conv = GATConv((8, 8), 4, heads=2).eval()
    x = torch.randn(1, 5, 8)
    adj = torch.ones(1, 5, 5, dtype=torch.bool)
    ref = dense_gat_conv(conv, x, x, adj)
    xp = torch.cat([x, torch.randn(1, 3, 8) * 100], dim=1)
    adjp = torch.zeros(1, 8, 8, dtype=torch.bool)
    adjp[:, :5, :5] = True
    out = dense_gat_conv(conv, xp, xp, adjp)[:, :5]
    assert torch.allclose(out, ref, atol=1e-6)


def test_rejects_other_layers():
    with pytest.raises(TypeError):
        dense_gat_conv(torch.nn.Linear(2, 2), torch.zeros(1, 1, 2), torch.zeros(1, 1, 2),
                       torch.ones(1, 1, 1, dtype=torch.bool))


@pytest.mark.parametrize("op", [GATConv, GATv2Conv])
def test_prepared_mask_equals_boolean_adjacency(op):
    """One adjacency_mask per graph (what CrossModalGraph passes to every layer) gives the bool adjacency's output."""
    from synctva_ros.model.gat import adjacency_mask

    g = torch.Generator().manual_seed(4)
    conv = op((8, 6), 4, heads=2).eval()
    x_src, x_dst = torch.randn(2, 7, 8, generator=g), torch.randn(2, 5, 6, generator=g)
    adj = torch.rand(2, 5, 7, generator=g) < 0.4
    adj[1] = False  # a row of the batch without edges: bias only
    out = dense_gat_conv(conv, x_src, x_dst, adjacency_mask(adj, x_src.dtype))
    assert torch.equal(out, dense_gat_conv(conv, x_src, x_dst, adj))
    assert torch.allclose(out[1], conv.bias.expand(5, -1))


@pytest.mark.parametrize("op", [GATConv, GATv2Conv])
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("concat", [True, False])
def test_isolated_target_output_is_what_pyg_gives_targets_without_edges(op, residual, concat):
    """What the graphs put in place of a conv whose source type is an inactive branch: PyG's own output for
    targets with no incoming edge (bias, plus the residual map)."""
    from synctva_ros.model.gat import isolated_target_output

    torch.manual_seed(3)
    conv = op((10, 11), 4, heads=3, concat=concat, add_self_loops=False, residual=residual).eval()
    x_src, x_dst = torch.randn(6, 10), torch.randn(5, 11)
    with torch.no_grad():
        conv.bias.normal_()  # PyG initialises it to zero
        ref = conv((x_src, x_dst), torch.tensor([[0, 1], [4, 4]]))[:4]  # targets 0-3 have no incoming edge
        out = isolated_target_output(conv, x_dst[:4].unsqueeze(0)).expand(1, 4, -1)[0]
    assert ref.abs().sum() > 0
    assert torch.allclose(out, ref, atol=1e-6)
