from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from synctva_ros.config import ModelConfig
from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures, collate
from synctva_ros.model.synctva import SyncTVA


DIMS = {"text": 12, "audio": 7, "visual": 9}
CFG = ModelConfig(hidden=16, heads=2, graph_layers=2, dropout=0.0, modality_dropout=0.0)


def random_inputs(b: int = 3, nt: int = 10, na: int = 6, nv: int = 4, seed: int = 0) -> list[torch.Tensor]:
    """Positional inputs with ragged masks (row 1 shorter, row 2 without visual)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, d in ((nt, DIMS["text"]), (na, DIMS["audio"]), (nv, DIMS["visual"])):
        x = torch.randn(b, n, d, generator=g)
        mask = torch.ones(b, n, dtype=torch.bool)
        t = torch.sort(torch.rand(b, n, generator=g), dim=1).values
        if b > 1:
            mask[1, n // 2 + 1 :] = False
        out += [x, mask, t]
    if b > 2:
        out[7][2] = False
    return out


def _model(**kw):
    torch.manual_seed(0)
    return SyncTVA(dataclasses.replace(CFG, **kw.pop("cfg", {})), DIMS, **kw).eval()


def test_shapes_and_contributions():
    model = _model()
    logits, contrib = model(*random_inputs())
    assert logits.shape == (3, 7) and contrib.shape == (3, 3)
    assert torch.isfinite(logits).all()
    assert torch.allclose(contrib.sum(1), torch.ones(3), atol=1e-5)
    assert contrib[2, 2] == 0 and (contrib >= 0).all() and (contrib <= 1).all()


@pytest.mark.parametrize("absent", [0, 1, 2])
def test_absent_modality_has_no_influence(absent):
    model = _model()
    inp = random_inputs()
    inp[3 * absent + 1][0] = False  # row 0 loses that modality
    ref_logits, ref_c = model(*inp)
    changed = [t.clone() for t in inp]
    changed[3 * absent][0] = torch.randn_like(changed[3 * absent][0]) * 100
    changed[3 * absent + 2][0] = torch.rand_like(changed[3 * absent + 2][0])
    logits, c = model(*changed)
    assert torch.allclose(logits, ref_logits, atol=1e-5) and torch.allclose(c, ref_c, atol=1e-6)
    assert c[0, absent] == 0


def test_padding_values_have_no_influence():
    model = _model()
    inp = random_inputs()
    ref, _ = model(*inp)
    inp[0][1, ~inp[1][1]] = float("nan")
    out, _ = model(*inp)
    assert torch.allclose(out, ref, atol=1e-5)


def test_all_modalities_absent_gives_uniform_logits_without_nan():
    model = _model()
    inp = random_inputs()
    for i in (1, 4, 7):
        inp[i][0] = False
    logits, contrib = model(*inp)
    assert torch.equal(logits[0], torch.zeros(7)) and torch.equal(contrib[0], torch.zeros(3))
    assert torch.isfinite(logits).all()


def test_inactive_branch_is_ignored_and_reported_absent():
    model = _model(active={"text": True, "audio": True, "visual": False})
    inp = random_inputs()
    ref, c = model(*inp)
    assert torch.equal(c[:, 2], torch.zeros(3))
    inp[6] = torch.randn_like(inp[6]) * 10
    assert torch.allclose(model(*inp)[0], ref, atol=1e-5)


def test_gradient_reaches_every_active_branch():
    torch.manual_seed(0)
    model = SyncTVA(CFG, DIMS, {"text": True, "audio": True, "visual": False}).train()
    logits, _ = model(*random_inputs(b=2))
    logits.sum().backward()
    for m in ("text", "audio"):
        grads = [p.grad for p in model.msde[m].parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.msde["visual"].parameters())
    conv = model.graphs["at"].layers[0].convs[("audio", "aligned", "text")]
    assert conv.lin_src.weight.grad.abs().sum() > 0


def test_deterministic_under_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = SyncTVA(dataclasses.replace(CFG, dropout=0.2, modality_dropout=0.3), DIMS).train()
        outs.append(model(*random_inputs())[0])
    assert torch.equal(outs[0], outs[1])


def test_modality_dropout_never_drops_everything():
    torch.manual_seed(0)
    model = SyncTVA(dataclasses.replace(CFG, modality_dropout=0.9), DIMS).train()
    present = torch.tensor([[True, True, True], [False, True, False], [False, False, False]]).repeat(50, 1)
    kept = model._drop_modalities(present)
    assert not (kept & ~present).any()
    assert kept[present.any(1)].any(1).all()
    assert not kept[~present.any(1)].any()


def test_forward_batch_and_context():
    torch.manual_seed(0)
    model = SyncTVA(dataclasses.replace(CFG, context_turns=2), DIMS).eval()
    rng = np.random.default_rng(0)
    items = [UtteranceFeatures(text=ModalityFeatures(rng.standard_normal((4, 12)).astype(np.float32),
                                                     np.linspace(0, 1, 4, dtype=np.float32)), label=1)
             for _ in range(2)]
    ctx = [[rng.standard_normal(12)], []]
    batch = collate(items, DIMS, ctx, context_turns=2)
    logits, contrib = model.forward_batch(batch)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert torch.allclose(contrib[:, 0], torch.ones(2))
    no_ctx, _ = model(*[getattr(batch, n) for n in ("text", "text_mask", "text_time", "audio", "audio_mask",
                                                     "audio_time", "visual", "visual_mask", "visual_time")])
    assert torch.allclose(no_ctx[1], logits[1], atol=1e-5)  # row without context unchanged
    assert not torch.allclose(no_ctx[0], logits[0], atol=1e-5)


def test_bad_construction():
    with pytest.raises(ValueError):
        SyncTVA(CFG, {"text": 3, "audio": 2})
    with pytest.raises(ValueError):
        SyncTVA(CFG, DIMS, {"smell": True})


def test_onnx_export_matches_torch(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = _model()
    names = ["text", "text_mask", "text_time", "audio", "audio_mask", "audio_time",
             "visual", "visual_mask", "visual_time"]
    axes = {n: {0: "batch", 1: f"n_{n.split('_')[0]}"} for n in names}
    path = tmp_path / "m.onnx"
    # TorchScript exporter: same graph, a few seconds instead of about a minute for dynamo=True here
    torch.onnx.export(model, tuple(random_inputs(b=2, nt=8, na=5, nv=3)), str(path), input_names=names,
                      output_names=["logits", "contributions"], opset_version=18, dynamo=False,
                      dynamic_axes=axes)
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = random_inputs(b=3, nt=11, na=6, nv=4, seed=4)
    got = sess.run(None, {n: t.numpy() for n, t in zip(names, inp)})
    ref = model(*inp)
    for g, r in zip(got, ref):
        assert np.allclose(g, r.detach().numpy(), atol=1e-4)


def test_inactive_branch_skips_its_work_with_the_same_outputs():
    """The visual branch off (every shipped checkpoint): its MSDE and graph convs are skipped; the outputs are those of
    computing them on its (absent) nodes."""
    from torch.utils.flop_counter import FlopCounterMode

    pruned = _model(active={"text": True, "audio": True, "visual": False})
    full = _model(active={"text": True, "audio": True, "visual": False})
    full.active = {m: True for m in full.active}  # the MSDE and every conv run; active_mask still drops visual
    for graph in full.graphs.values():
        graph.active_a = graph.active_b = True
    inp = random_inputs()
    with torch.no_grad(), FlopCounterMode(display=False) as fc_full:
        ref = full(*inp)
    with torch.no_grad(), FlopCounterMode(display=False) as fc_pruned:
        out = pruned(*inp)
    assert torch.allclose(out[0], ref[0], atol=1e-6) and torch.allclose(out[1], ref[1], atol=1e-7)
    assert fc_pruned.get_total_flops() < 0.8 * fc_full.get_total_flops()
