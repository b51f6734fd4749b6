"""training.precision: autocast and loss scaling of one training step (issue 10, mixed precision on CUDA)."""

from __future__ import annotations

import pytest
import torch

from synctva_ros.training.precision import TrainingPrecision


def _step(precision: TrainingPrecision, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.dtype]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3)).to(precision.device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(32, 8, device=precision.device)
    y = torch.randint(0, 3, (32,), device=precision.device)
    before = [p.detach().clone() for p in model.parameters()]
    with precision.autocast():
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
    precision.step(loss, opt, model.parameters(), grad_clip=1.0)
    moved = torch.stack([(p.detach() - b).abs().max() for p, b in zip(model.parameters(), before)])
    return model, moved, logits.dtype


def test_fp32_and_bf16_steps_on_the_cpu() -> None:
    m32, moved32, dt32 = _step(TrainingPrecision("fp32", "cpu"))
    m16, moved16, dt16 = _step(TrainingPrecision("bf16", "cpu"))
    assert dt32 == torch.float32 and dt16 == torch.bfloat16  # the products ran in bf16
    assert (moved32 > 0).all() and (moved16 > 0).all()
    assert all(p.dtype == torch.float32 for p in m16.parameters())  # weights stay fp32
    for a, b in zip(m32.parameters(), m16.parameters()):  # the same step, up to bf16 rounding
        torch.testing.assert_close(a, b, atol=2e-2, rtol=0)


def test_fp16_needs_cuda_and_unknown_precisions_are_refused() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        TrainingPrecision("fp16", "cpu")
    with pytest.raises(ValueError):
        TrainingPrecision("int8", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_with_loss_scaling_on_cuda() -> None:
    prec = TrainingPrecision("fp16", "cuda")
    model, moved, dtype = _step(prec)
    assert dtype == torch.float16 and prec.scaler is not None and (moved > 0).all()
