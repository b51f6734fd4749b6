from __future__ import annotations

import torch

from synctva_ros.model.msde import MSDE


def test_shapes_mask_and_gate_strength():
    torch.manual_seed(0)
    block = MSDE(6, 8, 2, 0.0).eval()
    x = torch.randn(2, 5, 6)
    mask = torch.tensor([[True] * 3 + [False] * 2, [False] * 5])
    t = torch.rand(2, 5)
    out, s = block(x, mask, t)
    assert out.shape == (2, 5, 8) and s.shape == (2,)
    assert torch.equal(out[0, 3:], torch.zeros(2, 8)) and torch.equal(out[1], torch.zeros(5, 8))
    assert 0 < s[0] < 1 and s[1] == 0
    x2 = x.clone()
    x2[0, 3:] = 50.0
    out2, s2 = block(x2, mask, t)
    assert torch.allclose(out, out2) and torch.allclose(s, s2)
