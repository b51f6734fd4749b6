"""SyncTVA.forward_subsets: every modality subset of a batch in one pass equals one forward per subset."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from synctva_ros.model.synctva import SyncTVA
from text_top_fixtures import CFG, DIMS, finetuned_model, model_inputs

KEEP = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)


def _prefix(b: int, m: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, m, dtype=torch.bool)
    mask[0, 2:] = False
    return torch.randn(b, m, DIMS["text"], generator=g), mask


def _alone(inputs: list[torch.Tensor], keep: torch.Tensor) -> list[torch.Tensor]:
    """The inputs as a batch collated with only the kept modalities: the others ``(B, 1, F)`` zeros, masked."""
    out = list(inputs)
    for i, k in enumerate(keep.tolist()):
        if not k:
            x = inputs[3 * i]
            out[3 * i: 3 * i + 3] = [torch.zeros(x.shape[0], 1, x.shape[2]),
                                     torch.zeros(x.shape[0], 1, dtype=torch.bool), torch.zeros(x.shape[0], 1)]
    return out


@pytest.mark.parametrize("context_turns", [0, 2])
def test_one_pass_equals_one_forward_per_subset(bert, context_turns: int) -> None:
    model = finetuned_model(bert)
    model.text_top.spec["context_keys"] = True  # the fine-tuned layers attend over the context's word pieces
    if context_turns:
        ctx_model = SyncTVA(dataclasses.replace(CFG, context_turns=context_turns), DIMS).eval()
        ctx_model.load_state_dict(model.state_dict(), strict=False)
        ctx_model.attach_text_top(model.text_top)
        model = ctx_model
    b = 3
    inputs = model_inputs(b)
    prefix, pmask = _prefix(b)
    g = torch.Generator().manual_seed(2)
    ctx_mask = torch.tensor([[True, False], [True, True], [False, False]])
    ctx = (torch.randn(b, context_turns, DIMS["text"], generator=g), ctx_mask) if context_turns else (None, None)
    with torch.inference_mode():
        logits, contrib = model.forward_subsets(KEEP, *inputs, *ctx, prefix, pmask)
        assert logits.shape == (b, len(KEEP), len(model.class_names)) and contrib.shape == (b, len(KEEP), 3)
        for s, keep in enumerate(KEEP):
            ref_l, ref_c = model(*_alone(inputs, keep), *ctx, prefix, pmask)
            assert torch.abs(torch.softmax(logits[:, s], -1) - torch.softmax(ref_l, -1)).max() < 1e-6
            assert torch.abs(contrib[:, s] - ref_c).max() < 1e-6
            assert torch.all(contrib[:, s][:, ~keep] == 0)  # a left-out modality contributes nothing
        assert torch.all(logits[:, -1] == 0)  # the empty subset: no modality, uniform probabilities


def test_the_all_modalities_subset_is_forward(bert) -> None:
    model = finetuned_model(bert)
    inputs = model_inputs(2)
    with torch.inference_mode():
        logits, contrib = model.forward_subsets(torch.ones(1, 3, dtype=torch.bool), *inputs)
        ref_l, ref_c = model(*inputs)
    assert torch.abs(logits[:, 0] - ref_l).max() < 1e-6 and torch.abs(contrib[:, 0] - ref_c).max() < 1e-6
