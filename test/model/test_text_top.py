"""Text-encoder top layers (model/text_top.py): equivalence with the real encoder, gradients, attaching, export.

The layers get their pretrained weights from the checkpoint package (``build_text_top``), as in training;
saving and restoring fine-tuned deltas is tested in ``test/checkpoint/test_text_top_deltas.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from text_top_fixtures import CFG, DIMS, finetuned_model, model_inputs

from synctva_ros.checkpoint import build_text_top
from synctva_ros.model.synctva import SyncTVA
from synctva_ros.model.text_top import TextTopLayers

TEXTS = ["Oh my god, I can't believe you did that!", "You must've had your hands full.", "Okay."]


def _hf(path: Path, texts):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path)).eval()
    enc = tok(list(texts), padding=True, return_tensors="pt", return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask").bool()
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return out, enc["attention_mask"].bool(), special


def test_layers_equal_the_encoders_own_layers(bert):
    top = build_text_top(str(bert), text_layer=1, num_layers=2).eval()
    assert top.spec["layers"] == [1, 2] and top.spec["special_tokens"] == 2
    plain = TextTopLayers({**top.spec, "special_tokens": 0}).eval()
    plain.load_hf_state(top.hf_state())
    out, mask, _ = _hf(bert, TEXTS)
    with torch.no_grad():
        y = plain(out.hidden_states[1], mask)
    assert torch.allclose(y[mask], out.last_hidden_state[mask], atol=1e-5)


def test_special_states_stand_in_for_the_dropped_special_tokens(bert):
    # calibrated on one text, the prepended special states are exactly that text's: the word pieces
    # alone (as the text extractor gives them) then reproduce the encoder's last layer
    top = build_text_top(str(bert), text_layer=1, num_layers=2, texts=TEXTS[:1]).eval()
    out, mask, special = _hf(bert, TEXTS[:1])
    keep = mask[0] & ~special[0]
    x = out.hidden_states[1][0][keep][None]
    with torch.no_grad():
        y = top(x, torch.ones(1, x.shape[1], dtype=torch.bool))
    assert torch.allclose(y[0], out.last_hidden_state[0][keep], atol=1e-5)


def test_gradient_reaches_the_top_layers(bert):
    model = finetuned_model(bert).train()
    logits, _ = model(*model_inputs())
    logits.logsumexp(-1).sum().backward()
    for name, p in model.text_top.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_attach_checks_the_layer_stack(bert):
    top = build_text_top(str(bert), 1, 2)
    with pytest.raises(ValueError):
        SyncTVA(dataclasses.replace(CFG, text_top_layers=0), DIMS).attach_text_top(top)
    with pytest.raises(ValueError):
        SyncTVA(dataclasses.replace(CFG, text_top_layers=1), DIMS).attach_text_top(top)


def test_onnx_export_with_top_layers(bert, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = finetuned_model(bert)
    names = ["text", "text_mask", "text_time", "audio", "audio_mask", "audio_time",
             "visual", "visual_mask", "visual_time"]
    axes = {n: {0: "batch", 1: f"n_{n.split('_')[0]}"} for n in names}
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, tuple(model_inputs(b=2, nt=5)), str(path), input_names=names,
                      output_names=["logits", "contributions"], opset_version=18, dynamo=False, dynamic_axes=axes)
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = model_inputs(b=3, nt=9, seed=3)
    got = sess.run(None, {n: t.numpy() for n, t in zip(names, inp)})
    with torch.no_grad():
        ref = model(*inp)
    for g, r in zip(got, ref):
        assert np.allclose(g, r.numpy(), atol=1e-4)
