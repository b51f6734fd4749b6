from __future__ import annotations

import pytest
import torch

from synctva_ros.model.attention import (MaskedMultiheadAttention, additive_mask, masked_mean, masked_softmax,
                                         softmax_last)


def test_masked_softmax_zero_for_fully_masked_rows():
    s = torch.randn(2, 4)
    mask = torch.tensor([[True, False, True, False], [False] * 4])
    p = masked_softmax(s, mask, dim=1)
    assert torch.allclose(p[0].sum(), torch.tensor(1.0))
    assert p[0, 1] == 0 and p[0, 3] == 0
    assert torch.equal(p[1], torch.zeros(4))


def test_masked_mean_ignores_padding():
    x = torch.randn(2, 3, 5)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    m = masked_mean(x, mask)
    assert torch.allclose(m[0], x[0, :2].mean(0))
    assert torch.equal(m[1], torch.zeros(5))


def test_attention_ignores_masked_keys_and_is_finite():
    torch.manual_seed(0)
    att = MaskedMultiheadAttention(8, 2).eval()
    q, k = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    out = att(q, k, mask)
    k2 = k.clone()
    k2[:, 2:] = 1e6
    assert torch.allclose(out, att(q, k2, mask))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_additive_mask_softmax_equals_masked_softmax(dtype):
    g = torch.Generator().manual_seed(7)
    scores = (torch.randn(3, 2, 4, 6, generator=g) * 5).to(dtype)
    mask = torch.rand(3, 1, 4, 6, generator=g) < 0.5
    mask[0, 0, 0] = False  # a fully masked row gives zeros, not NaN
    out = softmax_last(scores, additive_mask(mask, dtype))
    ref = masked_softmax(scores.float(), mask, dim=-1)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert torch.allclose(out.float(), ref, atol=1e-6 if dtype == torch.float32 else 2e-3)
    assert torch.equal(out[0, 0, 0], torch.zeros(6, dtype=dtype))
    assert torch.all(out[~mask.expand_as(out)] == 0)
