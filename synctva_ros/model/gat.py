r"""Dense, batched graph attention that runs a PyG ``GATConv``/``GATv2Conv`` with its own parameters.

Sync-TVA (Deng et al., arXiv 2507.21395, Sec. 3.3) processes each cross-modal graph
with graph attention. The reference implementation is PyTorch Geometric's
``GATConv`` inside a ``HeteroConv`` (see :mod:`synctva_ros.model.graphs`), which
works on one edge list per graph. On a robot we need a padded *batch* of
utterances, speed, and ONNX export; this module evaluates the very same layer on
a dense boolean adjacency ``(B, N_dst, N_src)``, reading the parameters of the PyG
module (``lin``/``lin_src``/``lin_dst``, ``att_src``, ``att_dst``, ``res``,
``bias``; for GATv2 ``lin_l``, ``lin_r``, ``att``), so both give the same output
(tested to 1e-5 in test/model/test_gat.py; 4e-7 measured on MELD-sized graphs).

GATConv (Veličković et al. 2018), for target node :math:`i` and source :math:`j`:

.. math::
    e_{ij} = \mathrm{LeakyReLU}\big(a_{dst}^\top W_{dst} x_i + a_{src}^\top W_{src} x_j\big),\quad
    \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}(e_{ij}),\quad
    x'_i = \Vert_{h} \sum_{j} \alpha^h_{ij} W^h_{src} x_j \;(+\,W_{res} x_i) + b

GATv2Conv (Brody et al. 2022): :math:`e_{ij} = a^\top \mathrm{LeakyReLU}(W_r x_i + W_l x_j)`,
messages :math:`W_l x_j`.

Self loops are *not* added here: they are part of ``adj`` (PyG's ``add_self_loops``
adds them inside the layer). A target with no incoming edge gets ``0 (+ res) + bias``,
exactly as PyG's scatter-sum gives. Edge features (``edge_dim``) are not supported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synctva_ros.model.attention import masked_softmax

__all__ = ["dense_gat_conv"]


def dense_gat_conv(conv: nn.Module, x_src: Tensor, x_dst: Tensor, adj: Tensor) -> Tensor:
    """Apply a PyG ``GATConv`` or ``GATv2Conv`` to a padded batch with a dense adjacency.

    Args:
        conv: a ``torch_geometric.nn.GATConv`` or ``GATv2Conv`` (its parameters are used as is,
            training mode decides attention dropout).
        x_src: ``(B, N_src, F_src)`` source node features.
        x_dst: ``(B, N_dst, F_dst)`` target node features.
        adj: ``(B, N_dst, N_src)`` bool, ``adj[b, i, j]`` = edge ``j -> i`` (include self loops here).

    Returns:
        ``(B, N_dst, heads * out_channels)`` if ``conv.concat`` else ``(B, N_dst, out_channels)``.

    Raises:
        TypeError: ``conv`` is neither GATConv nor GATv2Conv.
        ValueError: ``conv`` uses edge features (``edge_dim``).
    """
    kind = type(conv).__name__
    if kind not in ("GATConv", "GATv2Conv"):
        raise TypeError(f"dense_gat_conv supports GATConv and GATv2Conv, got {kind}")
    if getattr(conv, "lin_edge", None) is not None:
        raise ValueError("dense_gat_conv does not support edge features (edge_dim)")
    b, ns, nd = x_src.shape[0], x_src.shape[1], x_dst.shape[1]
    h, c = conv.heads, conv.out_channels
    if kind == "GATConv":
        if conv.lin is not None:
            hs, hd = conv.lin(x_src), conv.lin(x_dst)
        else:
            hs, hd = conv.lin_src(x_src), conv.lin_dst(x_dst)
        hs = hs.reshape(b, ns, h, c)
        hd = hd.reshape(b, nd, h, c)
        a_src = (hs * conv.att_src).sum(dim=-1)  # (B, Ns, H)
        a_dst = (hd * conv.att_dst).sum(dim=-1)  # (B, Nd, H)
        scores = F.leaky_relu(a_dst.unsqueeze(2) + a_src.unsqueeze(1), conv.negative_slope)  # (B, Nd, Ns, H)
        messages = hs
    else:
        xl = conv.lin_l(x_src).reshape(b, ns, h, c)
        xr = conv.lin_r(x_dst).reshape(b, nd, h, c)
        z = F.leaky_relu(xr.unsqueeze(2) + xl.unsqueeze(1), conv.negative_slope)  # (B, Nd, Ns, H, C)
        scores = (z * conv.att).sum(dim=-1)
        messages = xl
    alpha = masked_softmax(scores, adj.unsqueeze(-1), dim=2)
    alpha = F.dropout(alpha, p=conv.dropout, training=conv.training)
    # (B, H, Nd, Ns) @ (B, H, Ns, C) -> (B, H, Nd, C)
    out = torch.matmul(alpha.permute(0, 3, 1, 2), messages.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
    out = out.reshape(b, nd, h * c) if conv.concat else out.mean(dim=2)
    if getattr(conv, "res", None) is not None:
        out = out + conv.res(x_dst)
    if conv.bias is not None:
        out = out + conv.bias
    return out
