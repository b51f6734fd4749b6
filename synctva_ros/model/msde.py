r"""Modality-Specific Dynamic Enhancement (MSDE), Sync-TVA (Deng et al., arXiv 2507.21395, Sec. 3.2).

The paper enhances each modality with dynamic gating plus self-attention before the
graphs. Its full text is not reachable; this module's exact form is our choice:

.. math::
    h_i &= W_p\,\mathrm{LN}(x_i) + w_t\,t_i \\
    \bar h &= \mathrm{mean}_{j \in \mathcal{M}}\, h_j \\
    g_i &= \sigma\big(W_g [h_i; \bar h]\big) \qquad \text{(dynamic gate, per channel)} \\
    \tilde h_i &= g_i \odot h_i \\
    \mathrm{out}_i &= \mathrm{LN}\big(\tilde h_i
        + \mathrm{Dropout}(\mathrm{MHA}_{\mathcal{M}}(\tilde h_i, \tilde h))\big)

with :math:`\mathcal{M}` the node mask and :math:`t_i \in [0, 1]` the node time (so
self-attention knows the order). The input LayerNorm makes the branch indifferent to
the raw scale of e.g. openSMILE functionals. The per-utterance *gate strength*
:math:`s = \mathrm{mean}_{i \in \mathcal{M}, c}\, g_{ic} \in (0, 1)` (0 when the modality
is absent) is how strongly the branch lets its features through; the fusion uses it
for the modality contributions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from synctva_ros.model.attention import MaskedMultiheadAttention, masked_mean

__all__ = ["MSDE"]


class MSDE(nn.Module):
    """One modality's enhancement block.

    Args:
        in_dim: feature width ``F_m`` of the modality.
        hidden: output width ``H``.
        heads: self-attention heads (``hidden % heads == 0``).
        dropout: dropout probability.

    Shapes:
        - x: ``(B, N, F_m)``; mask: ``(B, N)`` bool; t: ``(B, N)`` node times in [0, 1]
        - output: ``(B, N, H)`` (zero at masked nodes) and gate strength ``(B,)`` in [0, 1]
          (0 for rows without nodes)

    Raises:
        ValueError: ``hidden`` not divisible by ``heads``.
    """

    def __init__(self, in_dim: int, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.in_norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, hidden)
        self.time = nn.Linear(1, hidden, bias=False)
        self.gate = nn.Linear(2 * hidden, hidden)
        self.attn = MaskedMultiheadAttention(hidden, heads, dropout)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        m = mask.unsqueeze(-1).to(x.dtype)
        h = self.proj(self.in_norm(x)) + self.time(t.unsqueeze(-1))
        ctx = masked_mean(h, mask).unsqueeze(1).expand_as(h)
        g = torch.sigmoid(self.gate(torch.cat([h, ctx], dim=-1)))
        hg = g * h
        out = self.norm(hg + self.dropout(self.attn(hg, hg, mask))) * m
        strength = (g.mean(dim=-1) * m.squeeze(-1)).sum(dim=1) / m.squeeze(-1).sum(dim=1).clamp(min=1.0)
        return out, strength
