r"""Deep interaction fusion, Cross-modal Attention Fusion (CAF) and the classifier.

Sync-TVA (Deng et al., arXiv 2507.21395, Sec. 3.4-3.5) fuses the three graphs' outputs
with attention, refines the modality representations with a cross-modal attention
fusion module and classifies. The exact equations are not reachable; this is our
choice (all masks are per row, so an absent modality never influences a row):

1. **Interaction fusion over graphs.** Each modality appears in two graphs
   (text: TV, AT; audio: VA, AT; visual: VA, TV). Its pooled vectors
   :math:`p_{g,m}` are combined with additive attention
   :math:`u_m = \sum_g \mathrm{softmax}_g(v^\top \tanh(W p_{g,m}))\, p_{g,m}`.
   Each graph also gets a summary :math:`z_g` (mean of its *present* modalities'
   pooled vectors) and the graphs are combined with the same kind of attention over
   the graphs that have a present modality: :math:`G`.
2. **CAF.** Each modality vector attends to the *other present* modalities
   (multi-head): :math:`c_m = \mathrm{LN}(u_m + \mathrm{MHA}(u_m, \{u_n\}_{n \ne m}))`,
   then a residual feed-forward block.
3. **Modality weights = contributions.** :math:`w = \mathrm{softmax}_{\text{present}}
   (\mathrm{score}(c_m) + \log s_m)` with :math:`s_m` the MSDE gate strength, so
   :math:`w_m \propto s_m e^{\mathrm{score}(c_m)}`. :math:`w` is reported as each
   modality's contribution (sums to 1 over present, active modalities; 0 if absent).
4. :math:`f = \mathrm{LN}(\mathrm{GELU}(W [\sum_m w_m c_m; G]))`.
5. **Dialogue context** (optional, the paper's named future work; on when
   ``ModelConfig.context_turns > 0``): :math:`f \leftarrow \mathrm{LN}(f +
   \mathrm{MHA}(f, W_c\, \mathrm{context}))` over the previous utterances' sentence
   embeddings; rows without context are unchanged.
6. Classifier: ``Linear(H, H) - GELU - Dropout - Linear(H, C)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from synctva_ros.model.attention import MaskedMultiheadAttention, masked_softmax
from synctva_ros.core.modalities import MODALITIES

__all__ = ["GRAPHS", "SyncTVAFusion"]

#: Graph name -> its two modalities (paper: visual-audio, text-visual, audio-text).
GRAPHS: dict[str, tuple[str, str]] = {"va": ("visual", "audio"), "tv": ("text", "visual"), "at": ("audio", "text")}


class _AdditiveScore(nn.Module):
    """``v^T tanh(W x)``: ``(..., H) -> (...)``."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


class SyncTVAFusion(nn.Module):
    """Interaction fusion + CAF + context + classifier (see module docstring).

    Args:
        hidden: width ``H``.
        heads: heads of CAF and context attention.
        dropout: dropout probability.
        num_classes: ``C``.
        context_dim: width of the context sentence embeddings; 0 disables context.

    Shapes:
        - pooled: ``{(graph, modality): (B, H)}`` for the 6 (graph, modality) pairs of :data:`GRAPHS`
        - present: ``(B, 3)`` bool in :data:`MODALITIES` order; gate: ``(B, 3)`` MSDE gate strengths
        - context: ``(B, K, context_dim)``, context_mask ``(B, K)`` bool (optional)
        - output: logits ``(B, C)`` and contributions ``(B, 3)``
    """

    def __init__(self, hidden: int, heads: int, dropout: float, num_classes: int, context_dim: int = 0) -> None:
        super().__init__()
        self.graph_score = _AdditiveScore(hidden)
        self.summary_score = _AdditiveScore(hidden)
        self.caf = MaskedMultiheadAttention(hidden, heads, dropout)
        self.caf_norm = nn.LayerNorm(hidden)
        self.caf_ffn = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(2 * hidden, hidden))
        self.caf_norm2 = nn.LayerNorm(hidden)
        self.modality_score = nn.Linear(hidden, 1)
        self.merge = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU())
        self.merge_norm = nn.LayerNorm(hidden)
        self.context_dim = int(context_dim)
        if self.context_dim > 0:
            self.context_proj = nn.Linear(self.context_dim, hidden)
            self.context_attn = MaskedMultiheadAttention(hidden, heads, dropout)
            self.context_norm = nn.LayerNorm(hidden)
        self.classifier = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                                        nn.Linear(hidden, num_classes))
        self.dropout = nn.Dropout(dropout)

    def forward(self, pooled: dict[tuple[str, str], Tensor], present: Tensor, gate: Tensor,
                context: Tensor | None = None, context_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        pres_f = present.to(gate.dtype)
        idx = {m: i for i, m in enumerate(MODALITIES)}
        # 1a. per modality: attention over the two graphs that contain it
        units = []
        for m in MODALITIES:
            vecs = torch.stack([pooled[(g, m)] for g, pair in GRAPHS.items() if m in pair], dim=1)  # (B, 2, H)
            w = torch.softmax(self.graph_score(vecs), dim=1)
            units.append((w.unsqueeze(-1) * vecs).sum(dim=1))
        u = torch.stack(units, dim=1)  # (B, 3, H)
        # 1b. graph summaries and attention over graphs with a present modality
        summaries, valid = [], []
        for g, (a, b) in GRAPHS.items():
            pa, pb = pres_f[:, idx[a]].unsqueeze(-1), pres_f[:, idx[b]].unsqueeze(-1)
            summaries.append((pooled[(g, a)] * pa + pooled[(g, b)] * pb) / (pa + pb).clamp(min=1.0))
            valid.append(present[:, idx[a]] | present[:, idx[b]])
        z = torch.stack(summaries, dim=1)  # (B, 3, H)
        zw = masked_softmax(self.summary_score(z), torch.stack(valid, dim=1), dim=1)
        graph_vec = (zw.unsqueeze(-1) * z).sum(dim=1)
        # 2. CAF: each modality attends to the other present modalities
        eye = torch.eye(len(MODALITIES), dtype=torch.bool, device=present.device)
        caf_mask = present.unsqueeze(1) & ~eye.unsqueeze(0)  # (B, 3 queries, 3 keys)
        c = self.caf_norm(u + self.dropout(self.caf(u, u, caf_mask)))
        c = self.caf_norm2(c + self.dropout(self.caf_ffn(c)))
        # 3. modality weights = contributions
        score = self.modality_score(c).squeeze(-1) + torch.log(gate.clamp(min=1e-6))
        weights = masked_softmax(score, present, dim=1)
        fused = (weights.unsqueeze(-1) * c).sum(dim=1)
        f = self.merge_norm(self.merge(torch.cat([fused, graph_vec], dim=-1)))
        # 5. dialogue context
        if self.context_dim > 0 and context is not None:
            if context_mask is None:
                context_mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
            k = self.context_proj(context)
            att = self.context_attn(f.unsqueeze(1), k, context_mask).squeeze(1)
            has = context_mask.any(dim=1, keepdim=True).to(f.dtype)
            f = self.context_norm(f + self.dropout(att) * has) * has + f * (1.0 - has)
        return self.classifier(f), weights
