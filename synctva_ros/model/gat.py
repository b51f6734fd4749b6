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

Evaluation order (the same function, fewer and cheaper operations on a CPU): GATConv's attention vectors are folded
into its bias-free linear maps, :math:`a^\top (W x) = (W^\top a)^\top x`, so the target side is an ``H``-column
matmul; scores are laid out ``(B, H, N_dst, N_src)`` so the softmax runs over the last axis; the mask is additive
(:func:`~synctva_ros.model.attention.additive_mask`), prepared once per graph by :func:`adjacency_mask`. This assumes
masked sources have bounded scores, which :class:`~synctva_ros.model.graphs.CrossModalGraph` guarantees by zeroing
masked nodes (docs/performance.md, "Graph attention laid out for the softmax").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synctva_ros.model.attention import AdditiveMask, additive_mask, softmax_last

__all__ = ["dense_gat_conv", "adjacency_mask", "isolated_target_output"]


def adjacency_mask(adj: Tensor, dtype: torch.dtype) -> AdditiveMask:
    """A dense adjacency prepared for :func:`dense_gat_conv`, once per graph and shared by its layers and heads.

    Args:
        adj: ``(B, N_dst, N_src)`` bool, ``adj[b, i, j]`` = edge ``j -> i``.
        dtype: the scores' dtype.

    Returns:
        :class:`~synctva_ros.model.attention.AdditiveMask` of shape ``(B, 1, N_dst, N_src)``
        (:func:`~synctva_ros.model.attention.additive_mask`). Raises nothing.
    """
    return additive_mask(adj.unsqueeze(1), dtype)


def _gat_logits(conv: nn.Module, x_src: Tensor, x_dst: Tensor) -> tuple[Tensor, Tensor]:
    """GATConv's messages ``(B, H, N_src, C)`` and scores ``(B, H, N_dst, N_src)``: the attention vectors folded
    into the (bias-free) linear maps, ``a^T (W x) = (W^T a)^T x``, so the target side needs ``H`` outputs instead of
    ``H * C`` and a source's messages and logits come from one matmul (one for everything when ``x_src is x_dst``)."""
    b, ns, nd = x_src.shape[0], x_src.shape[1], x_dst.shape[1]
    h, c = conv.heads, conv.out_channels
    lin_src = conv.lin if conv.lin is not None else conv.lin_src
    lin_dst = conv.lin if conv.lin is not None else conv.lin_dst
    if lin_src.bias is not None or lin_dst.bias is not None:
        raise ValueError("dense_gat_conv expects GATConv's bias-free linear maps")
    w_src, w_dst = lin_src.weight, lin_dst.weight
    u_src = torch.einsum("hc,hcf->hf", conv.att_src.reshape(h, c), w_src.reshape(h, c, -1))
    u_dst = torch.einsum("hc,hcf->hf", conv.att_dst.reshape(h, c), w_dst.reshape(h, c, -1))
    if x_src is x_dst:
        proj = F.linear(x_src, torch.cat([w_src, u_src, u_dst], dim=0))  # (B, N, HC + 2H)
        a_dst = proj[..., h * c + h :]
    else:
        proj = F.linear(x_src, torch.cat([w_src, u_src], dim=0))  # (B, Ns, HC + H)
        a_dst = F.linear(x_dst, u_dst)  # (B, Nd, H)
    messages = proj[..., : h * c].reshape(b, ns, h, c).transpose(1, 2)
    a_src = proj[..., h * c : h * c + h]  # (B, Ns, H)
    scores = a_dst.transpose(1, 2).unsqueeze(3) + a_src.transpose(1, 2).unsqueeze(2)  # (B, H, Nd, Ns)
    return messages, F.leaky_relu(scores, conv.negative_slope)


def dense_gat_conv(conv: nn.Module, x_src: Tensor, x_dst: Tensor, adj: Tensor | AdditiveMask) -> Tensor:
    """Apply a PyG ``GATConv`` or ``GATv2Conv`` to a padded batch with a dense adjacency.

    Laid out as ``(B, H, N_dst, N_src)`` so that the softmax runs over the last axis and the messages' matmul
    needs no transposed copy (onnxruntime's Softmax on another axis transposes; its ``Where`` broadcasts slowly).

    Args:
        conv: a ``torch_geometric.nn.GATConv`` or ``GATv2Conv`` (its parameters are used as is,
            training mode decides attention dropout).
        x_src: ``(B, N_src, F_src)`` source node features.
        x_dst: ``(B, N_dst, F_dst)`` target node features (pass the same tensor object for a graph within one
            node type: one matmul then serves both sides).
        adj: ``(B, N_dst, N_src)`` bool, ``adj[b, i, j]`` = edge ``j -> i`` (include self loops here), or that
            adjacency prepared once by :func:`adjacency_mask`.

    Returns:
        ``(B, N_dst, heads * out_channels)`` if ``conv.concat`` else ``(B, N_dst, out_channels)``.

    Raises:
        TypeError: ``conv`` is neither GATConv nor GATv2Conv.
        ValueError: ``conv`` uses edge features (``edge_dim``), or a GATConv linear map has a bias (PyG's have none).
    """
    kind = type(conv).__name__
    if kind not in ("GATConv", "GATv2Conv"):
        raise TypeError(f"dense_gat_conv supports GATConv and GATv2Conv, got {kind}")
    if getattr(conv, "lin_edge", None) is not None:
        raise ValueError("dense_gat_conv does not support edge features (edge_dim)")
    b, ns, nd = x_src.shape[0], x_src.shape[1], x_dst.shape[1]
    h, c = conv.heads, conv.out_channels
    if kind == "GATConv":
        messages, scores = _gat_logits(conv, x_src, x_dst)
    else:
        xl = conv.lin_l(x_src).reshape(b, ns, h, c)
        xr = conv.lin_r(x_dst).reshape(b, nd, h, c)
        z = F.leaky_relu(xr.unsqueeze(2) + xl.unsqueeze(1), conv.negative_slope)  # (B, Nd, Ns, H, C)
        scores = (z * conv.att).sum(dim=-1).permute(0, 3, 1, 2)  # (B, H, Nd, Ns)
        messages = xl.transpose(1, 2)
    mask = adj if isinstance(adj, AdditiveMask) else adjacency_mask(adj, scores.dtype)
    alpha = F.dropout(softmax_last(scores, mask), p=conv.dropout, training=conv.training)
    out = torch.matmul(alpha, messages).transpose(1, 2)  # (B, H, Nd, Ns) @ (B, H, Ns, C) -> (B, Nd, H, C)
    out = out.reshape(b, nd, h * c) if conv.concat else out.mean(dim=2)
    return _plus_residual_and_bias(conv, x_dst, out)


def isolated_target_output(conv: nn.Module, x_dst: Tensor) -> Tensor:
    """What a PyG ``GATConv`` or ``GATv2Conv`` gives targets with no incoming edge: ``0 (+ res(x_dst)) + bias``.

    PyG's scatter-sum over an empty neighbourhood is 0, so only the residual map and the bias remain. The graphs use
    it in place of :func:`dense_gat_conv` when the source node type is an inactive branch (absent in every row), which
    gives the same values without the attention's work.

    Args:
        conv: the ``GATConv`` / ``GATv2Conv``.
        x_dst: ``(B, N_dst, F_dst)`` target node features (read only by a residual map).

    Returns:
        A tensor broadcastable to ``(B, N_dst, heads * out_channels)`` (``out_channels`` without ``concat``): the
        bias ``(width,)``, ``res(x_dst) (+ bias)`` ``(B, N_dst, width)``, or a zero-dimensional zero when the conv
        has neither. Raises nothing.
    """
    out = _plus_residual_and_bias(conv, x_dst, None)
    return out if out is not None else x_dst.new_zeros(())


def _plus_residual_and_bias(conv: nn.Module, x_dst: Tensor, out: Tensor | None) -> Tensor | None:
    """The tail of GATConv / GATv2Conv: ``out (+ res(x_dst)) (+ bias)``; ``out=None`` stands for the empty sum."""
    if getattr(conv, "res", None) is not None:
        out = conv.res(x_dst) if out is None else out + conv.res(x_dst)
    if conv.bias is not None:
        out = conv.bias if out is None else out + conv.bias
    return out
