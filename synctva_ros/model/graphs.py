"""Heterogeneous cross-modal graphs (Sync-TVA, Deng et al., arXiv 2507.21395, Sec. 3.3).

Sync-TVA builds three graphs, one per modality pair: visual-audio, text-visual and
audio-text. Each graph's nodes are the (MSDE-enhanced) nodes of its two modalities.
The paper's full text is not reachable; the edge rules below are this package's
choice, configurable through :class:`~synctva_ros.config.ModelConfig`:

* ``(m, "temporal", m)`` for each of the two modalities: node ``i`` and ``j`` of the
  same modality are linked when ``|i - j| <= temporal_neighbours`` (sequence
  position, both directions, self loops included);
* ``(a, "aligned", b)`` and ``(b, "aligned", a)``: nodes of the two modalities are
  linked when their normalised times differ by at most ``align_tolerance``; in
  addition every node is linked to its nearest node (in time; first index on ties)
  of the other modality, so no present node is isolated across modalities. The
  cross edge set is symmetric and used in both directions.

Each layer is a ``torch_geometric.nn.HeteroConv`` with one ``GATConv`` (or
``GATv2Conv``, ``ModelConfig.gat_variant``) per edge type and ``aggr="sum"``, so the
parameters are PyG's. ``impl="dense"`` (default) evaluates those convs on padded
batches through :func:`synctva_ros.model.gat.dense_gat_conv` (fast, exportable; each graph's four masks are
prepared once for all its layers);
``impl="pyg"`` builds one ``HeteroData`` per utterance and runs ``HeteroConv`` (the
reference; both agree within 1e-5). After each layer, per node type:
``h <- LayerNorm(h + Dropout(ELU(conv(h))))`` (choice; paper silent).

A node type whose branch is inactive (``active``, e.g. a checkpoint without visual weights) is absent in every row:
the dense path then skips the convs into it (their outputs are masked to zero) and replaces the convs out of it by
:func:`~synctva_ros.model.gat.isolated_target_output` (what an empty neighbourhood gives), the same values without
the work: half the convs of a graph with such a node type.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import GATConv, GATv2Conv, HeteroConv

from synctva_ros.model.attention import AdditiveMask, masked_mean
from synctva_ros.model.gat import adjacency_mask, dense_gat_conv, isolated_target_output

__all__ = ["CrossModalGraph", "temporal_adjacency", "cross_adjacency", "reference_edges", "TEMPORAL", "ALIGNED"]

TEMPORAL = "temporal"
ALIGNED = "aligned"


def temporal_adjacency(mask: Tensor, k: int) -> Tensor:
    """Intra-modality adjacency ``(B, N, N)``: ``|i - j| <= k`` between present nodes (self loops included).

    Args:
        mask: ``(B, N)`` bool node mask.
        k: number of previous/next neighbours.
    """
    n = mask.shape[1]
    idx = torch.arange(n, device=mask.device)
    band = (idx.unsqueeze(0) - idx.unsqueeze(1)).abs() <= k
    return band.unsqueeze(0) & mask.unsqueeze(2) & mask.unsqueeze(1)


def cross_adjacency(t_src: Tensor, mask_src: Tensor, t_dst: Tensor, mask_dst: Tensor, tolerance: float) -> Tensor:
    """Cross-modal adjacency ``(B, N_dst, N_src)`` from node times (symmetric rule, see module doc).

    Args:
        t_src, mask_src: ``(B, N_src)`` times in [0, 1] and mask of the source modality.
        t_dst, mask_dst: ``(B, N_dst)`` of the target modality.
        tolerance: largest time difference (normalised window time) that makes an edge.
    """
    both = mask_dst.unsqueeze(2) & mask_src.unsqueeze(1)  # (B, Nd, Ns)
    dist = (t_dst.unsqueeze(2) - t_src.unsqueeze(1)).abs()
    close = (dist <= tolerance) & both
    far = dist.masked_fill(~both, 1e9)
    ns, nd = t_src.shape[1], t_dst.shape[1]
    nearest_src = far.argmin(dim=2)  # (B, Nd): nearest source of each target
    nearest_dst = far.argmin(dim=1)  # (B, Ns): nearest target of each source
    src_idx = torch.arange(ns, device=t_src.device)
    dst_idx = torch.arange(nd, device=t_src.device)
    nn_a = src_idx.view(1, 1, ns) == nearest_src.unsqueeze(2)
    nn_b = dst_idx.view(1, nd, 1) == nearest_dst.unsqueeze(1)
    return close | ((nn_a | nn_b) & both)


def reference_edges(t_a: np.ndarray, pos_a: np.ndarray, t_b: np.ndarray, pos_b: np.ndarray, k: int,
                    tolerance: float) -> dict[str, np.ndarray]:
    """Edge lists of one utterance, built with plain loops (the reference for the dense masks).

    Args:
        t_a, t_b: node times of the present nodes of each modality.
        pos_a, pos_b: their sequence positions (index in the padded batch).
        k, tolerance: as :func:`temporal_adjacency` / :func:`cross_adjacency`.

    Returns:
        ``{"aa", "bb", "ab", "ba"}`` -> ``(2, E)`` int64 arrays of (source, target) local indices.
        Temporal lists carry no self loops (GATConv adds them).
    """
    def temporal(pos: np.ndarray) -> np.ndarray:
        e = [(j, i) for i in range(len(pos)) for j in range(len(pos)) if i != j and abs(pos[i] - pos[j]) <= k]
        return np.array(e, dtype=np.int64).reshape(-1, 2).T

    pairs = set()
    if len(t_a) and len(t_b):
        d = np.abs(t_a[:, None] - t_b[None, :])
        for i in range(len(t_a)):
            for j in range(len(t_b)):
                if d[i, j] <= tolerance:
                    pairs.add((i, j))
        for i in range(len(t_a)):
            pairs.add((i, int(np.argmin(d[i]))))
        for j in range(len(t_b)):
            pairs.add((int(np.argmin(d[:, j])), j))
    ab = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2).T  # a -> b
    return {"aa": temporal(pos_a), "bb": temporal(pos_b), "ab": ab, "ba": ab[::-1].copy()}


def _into(conv: HeteroConv, dst: str, src: str, x_dst: Tensor, x_src: Tensor, temporal: AdditiveMask,
          aligned: AdditiveMask | None, src_active: bool) -> Tensor:
    """One layer's summed conv outputs into ``dst`` (dense path): its temporal conv plus the aligned conv from ``src``,
    or that conv's bias and residual alone when ``src`` is an inactive type (``aligned`` is then ``None``)."""
    cross = conv.convs[(src, ALIGNED, dst)]
    out = dense_gat_conv(conv.convs[(dst, TEMPORAL, dst)], x_dst, x_dst, temporal)
    return out + (dense_gat_conv(cross, x_src, x_dst, aligned) if src_active else isolated_target_output(cross, x_dst))


class CrossModalGraph(nn.Module):
    """Graph attention over one modality pair (paper Sec. 3.3).

    Args:
        mod_a, mod_b: node type names (modality names), e.g. ``"visual"``, ``"audio"``.
        hidden: node width ``H`` (input and output).
        heads: attention heads; ``hidden`` must be divisible by it.
        layers: number of HeteroConv layers.
        dropout: dropout on attention weights and on layer outputs.
        temporal_neighbours: ``k`` of the intra-modality edges.
        align_tolerance: time tolerance of the cross-modal edges.
        variant: ``"gat"`` (GATConv) or ``"gatv2"`` (GATv2Conv).
        active: whether each node type's branch exists, ``(a, b)``; an inactive type is taken as absent in every
            row whatever its mask says (dense path: its convs skipped, see the module docstring).

    Shapes:
        - x_a ``(B, N_a, H)``, mask_a ``(B, N_a)`` bool, t_a ``(B, N_a)``; same for b
        - output: node states ``(B, N_a, H)``, ``(B, N_b, H)`` (zero at masked nodes) and
          masked-mean pooled vectors ``(B, H)``, ``(B, H)`` (zero for an absent modality or an inactive type)

    Raises:
        ValueError: ``hidden`` not divisible by ``heads``, unknown ``variant`` or ``impl``.
    """

    def __init__(self, mod_a: str, mod_b: str, hidden: int, heads: int, layers: int, dropout: float,
                 temporal_neighbours: int, align_tolerance: float, variant: str = "gat",
                 active: tuple[bool, bool] = (True, True)) -> None:
        super().__init__()
        if hidden % heads != 0:
            raise ValueError(f"hidden={hidden} is not divisible by heads={heads}")
        if variant not in ("gat", "gatv2"):
            raise ValueError(f"unknown graph attention variant '{variant}' (gat, gatv2)")
        self.mod_a, self.mod_b = mod_a, mod_b
        self.k, self.tolerance = int(temporal_neighbours), float(align_tolerance)
        self.active_a, self.active_b = bool(active[0]), bool(active[1])
        self.edge_types = [(mod_a, TEMPORAL, mod_a), (mod_b, TEMPORAL, mod_b),
                           (mod_a, ALIGNED, mod_b), (mod_b, ALIGNED, mod_a)]
        op = GATConv if variant == "gat" else GATv2Conv
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(layers):
            convs = {et: op((hidden, hidden), hidden // heads, heads=heads, concat=True, dropout=dropout,
                            add_self_loops=(et[0] == et[2]))
                     for et in self.edge_types}
            self.layers.append(HeteroConv(convs, aggr="sum"))
            self.norms.append(nn.ModuleDict({mod_a: nn.LayerNorm(hidden), mod_b: nn.LayerNorm(hidden)}))
        self.dropout = nn.Dropout(dropout)

    # ------------------------------------------------------------------ dense
    def _dense_layer(self, conv: HeteroConv, xa: Tensor, xb: Tensor, adj: dict) -> tuple[Tensor | None, Tensor | None]:
        """One HeteroConv layer's summed conv outputs per node type; ``None`` for an inactive type."""
        a, b = self.mod_a, self.mod_b
        out_a = _into(conv, a, b, xa, xb, adj["aa"], adj.get("ba"), self.active_b) if self.active_a else None
        out_b = _into(conv, b, a, xb, xa, adj["bb"], adj.get("ab"), self.active_a) if self.active_b else None
        return out_a, out_b

    def _dense_masks(self, x_a: Tensor, mask_a: Tensor, t_a: Tensor, mask_b: Tensor, t_b: Tensor) -> dict:
        """The additive masks the active convs use, prepared once for all layers."""
        adj = {}
        if self.active_a:
            adj["aa"] = temporal_adjacency(mask_a, self.k)
        if self.active_b:
            adj["bb"] = temporal_adjacency(mask_b, self.k)
        if self.active_a and self.active_b:
            ab = cross_adjacency(t_a, mask_a, t_b, mask_b, self.tolerance)  # dst b, src a
            adj["ab"], adj["ba"] = ab, ab.transpose(1, 2)
        return {k: adjacency_mask(v, x_a.dtype) for k, v in adj.items()}

    # -------------------------------------------------------------------- pyg
    def _pyg_layer(self, conv: HeteroConv, xa: Tensor, xb: Tensor, graphs: list) -> tuple[Tensor, Tensor]:
        out_a, out_b = torch.zeros_like(xa), torch.zeros_like(xb)
        a, b = self.mod_a, self.mod_b
        for i, (ia, ib, edges) in enumerate(graphs):
            data = HeteroData()
            data[a].x = xa[i, ia]
            data[b].x = xb[i, ib]
            for key, et in zip(("aa", "bb", "ab", "ba"), self.edge_types):
                data[et].edge_index = torch.as_tensor(edges[key], device=xa.device)
            res = conv(data.x_dict, data.edge_index_dict)
            out_a[i, ia] = res[a]
            out_b[i, ib] = res[b]
        return out_a, out_b

    def _pyg_graphs(self, mask_a: Tensor, t_a: Tensor, mask_b: Tensor, t_b: Tensor) -> list:
        graphs = []
        for i in range(mask_a.shape[0]):
            ia = torch.nonzero(mask_a[i]).flatten()
            ib = torch.nonzero(mask_b[i]).flatten()
            edges = reference_edges(t_a[i, ia].detach().cpu().numpy(), ia.cpu().numpy(),
                                    t_b[i, ib].detach().cpu().numpy(), ib.cpu().numpy(), self.k, self.tolerance)
            graphs.append((ia, ib, edges))
        return graphs

    def forward(self, x_a: Tensor, mask_a: Tensor, t_a: Tensor, x_b: Tensor, mask_b: Tensor, t_b: Tensor,
                impl: str = "dense") -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if not self.active_a:
            mask_a = torch.zeros_like(mask_a)
        if not self.active_b:
            mask_b = torch.zeros_like(mask_b)
        if impl == "dense":
            ctx: object = self._dense_masks(x_a, mask_a, t_a, mask_b, t_b)
            step = self._dense_layer
        elif impl == "pyg":
            ctx = self._pyg_graphs(mask_a, t_a, mask_b, t_b)
            step = self._pyg_layer
        else:
            raise ValueError(f"unknown graph implementation '{impl}' (dense, pyg)")
        ma = mask_a.unsqueeze(-1).to(x_a.dtype)
        mb = mask_b.unsqueeze(-1).to(x_b.dtype)
        ha = x_a if self.active_a else x_a * ma  # an inactive type's states: zero
        hb = x_b if self.active_b else x_b * mb
        for conv, norm in zip(self.layers, self.norms):
            oa, ob = step(conv, ha, hb, ctx)  # type: ignore[arg-type]
            if oa is not None:  # None: an inactive type, whose states stay zero (dense path)
                ha = norm[self.mod_a](ha + self.dropout(F.elu(oa))) * ma
            if ob is not None:
                hb = norm[self.mod_b](hb + self.dropout(F.elu(ob))) * mb
        return ha, hb, masked_mean(ha, mask_a), masked_mean(hb, mask_b)
