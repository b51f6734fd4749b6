"""model.fusion: interaction fusion + CAF + context + classifier (shapes, masking, gate weighting)."""

from __future__ import annotations

import pytest
import torch

from synctva_ros.core.modalities import MODALITIES
from synctva_ros.model.fusion import GRAPHS, SyncTVAFusion

H, C, B = 16, 5, 4


def _fusion(context_dim: int = 0, seed: int = 0) -> SyncTVAFusion:
    torch.manual_seed(seed)
    return SyncTVAFusion(H, heads=2, dropout=0.3, num_classes=C, context_dim=context_dim).eval()


def _inputs(seed: int = 0) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Pooled vectors for the 6 (graph, modality) pairs; rows: all present, no visual, audio only, none."""
    g = torch.Generator().manual_seed(seed)
    pooled = {(name, m): torch.randn(B, H, generator=g) for name, pair in GRAPHS.items() for m in pair}
    present = torch.tensor([[True, True, True], [True, True, False], [False, True, False], [False, False, False]])
    gate = 0.1 + 0.9 * torch.rand(B, 3, generator=g)
    return pooled, present, gate


def test_graphs_pair_every_modality_twice():
    assert sorted(GRAPHS) == ["at", "tv", "va"]
    for m in MODALITIES:
        assert sum(m in pair for pair in GRAPHS.values()) == 2


def test_output_shapes_and_contributions():
    pooled, present, gate = _inputs()
    with torch.no_grad():
        logits, weights = _fusion()(pooled, present, gate)
    assert logits.shape == (B, C) and weights.shape == (B, 3)
    assert torch.isfinite(logits).all() and torch.isfinite(weights).all()
    torch.testing.assert_close(weights.sum(dim=1), present.any(dim=1).float())
    assert (weights[~present] == 0).all() and (weights[present] > 0).all()
    assert weights[2, MODALITIES.index("audio")] == 1.0  # a single present modality carries everything


@pytest.mark.parametrize("row, absent", [(1, "visual"), (2, "text"), (2, "visual"), (3, "audio")])
def test_an_absent_modality_never_changes_the_row(row, absent):
    fusion = _fusion()
    pooled, present, gate = _inputs()
    assert not present[row, MODALITIES.index(absent)]
    changed = {k: v.clone() for k, v in pooled.items()}
    for (name, m), v in changed.items():
        if m == absent:
            v[row] = 1e3 * torch.randn(H)
    gate2 = gate.clone()
    gate2[row, MODALITIES.index(absent)] = 0.77
    with torch.no_grad():
        ref = fusion(pooled, present, gate)
        out = fusion(changed, present, gate2)
    torch.testing.assert_close(out[0][row], ref[0][row], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1][row], ref[1][row], rtol=0, atol=1e-6)


def test_rows_are_independent():
    fusion = _fusion()
    pooled, present, gate = _inputs()
    changed = {k: v.clone() for k, v in pooled.items()}
    for v in changed.values():
        v[1] += 5.0
    with torch.no_grad():
        ref, out = fusion(pooled, present, gate), fusion(changed, present, gate)
    keep = torch.tensor([True, False, True, True])
    torch.testing.assert_close(out[0][keep], ref[0][keep], rtol=0, atol=1e-5)
    assert not torch.allclose(out[0][1], ref[0][1])


def test_contribution_is_proportional_to_the_msde_gate():
    """w_m ∝ s_m exp(score(c_m)): scaling one present modality's gate scales its odds by the same factor."""
    fusion = _fusion()
    pooled, present, gate = _inputs()
    t, a = MODALITIES.index("text"), MODALITIES.index("audio")
    doubled = gate.clone()
    doubled[1, t] *= 2.0
    with torch.no_grad():
        w0 = fusion(pooled, present, gate)[1]
        w1 = fusion(pooled, present, doubled)[1]
    torch.testing.assert_close(w1[1, t] / w1[1, a], 2.0 * w0[1, t] / w0[1, a], rtol=1e-4, atol=0)
    assert w1[1, t] > w0[1, t]


def test_context_changes_only_rows_that_have_context():
    fusion = _fusion(context_dim=12)
    pooled, present, gate = _inputs()
    g = torch.Generator().manual_seed(1)
    context = torch.randn(B, 3, 12, generator=g)
    mask = torch.tensor([[True, True, False], [False, False, False], [False, False, True], [False, False, False]])
    with torch.no_grad():
        none_logits, none_w = fusion(pooled, present, gate)
        logits, w = fusion(pooled, present, gate, context, mask)
        all_logits, _ = fusion(pooled, present, gate, context)  # no mask: every turn counts
    torch.testing.assert_close(logits[[1, 3]], none_logits[[1, 3]], rtol=0, atol=1e-6)
    assert not torch.allclose(logits[0], none_logits[0]) and not torch.allclose(logits[2], none_logits[2])
    torch.testing.assert_close(w, none_w)  # context acts after the modality weights
    assert not torch.allclose(all_logits[1], none_logits[1])
    # without a context module, context inputs are ignored
    plain = _fusion(context_dim=0)
    with torch.no_grad():
        torch.testing.assert_close(plain(pooled, present, gate, context, mask)[0], plain(pooled, present, gate)[0])


def test_dropout_only_in_training():
    fusion = _fusion()
    pooled, present, gate = _inputs()
    with torch.no_grad():
        a, b = fusion(pooled, present, gate)[0], fusion(pooled, present, gate)[0]
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        fusion.train()
        torch.manual_seed(0)
        c = fusion(pooled, present, gate)[0]
    assert not torch.allclose(a, c)
