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


def _pair(bert: Path, context: str, text: str):
    """Layer-0 and last-layer states of ``[CLS] context [SEP] text [SEP]`` and which positions are the text's."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(bert))
    enc = tok(context, text, return_tensors="pt", return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask")[0].bool()
    nodes = torch.tensor([sid == 1 for sid in enc.sequence_ids(0)]) & ~special
    with torch.no_grad():
        out = AutoModel.from_pretrained(str(bert)).eval()(**enc, output_hidden_states=True)
    return out.hidden_states[0][0], out.last_hidden_state[0], nodes


def test_context_keys_make_the_layers_the_encoder_on_context_and_utterance(bert):
    """With every layer from the embeddings up (text_layer 0, K = L) and the other positions' states as the
    prefix, the nodes' outputs are the encoder's own last layer on the pair: the context is attended."""
    h0, last, nodes = _pair(bert, "Ross: we were on a break!", "Rachel: you're unbelievable")
    spec = {**build_text_top(str(bert), 0, 3).spec, "special_tokens": 0, "context_keys": True}
    top = TextTopLayers(spec).eval()
    top.load_hf_state(build_text_top(str(bert), 0, 3).hf_state())
    x, prefix = h0[nodes][None], h0[~nodes][None]
    one = torch.ones(1, x.shape[1], dtype=torch.bool)
    pad = torch.zeros(1, 3, h0.shape[1])  # masked padding slots must not change anything
    pmask = torch.cat([torch.ones(1, prefix.shape[1], dtype=torch.bool), torch.zeros(1, 3, dtype=torch.bool)], 1)
    with torch.no_grad():
        y = top(x, one, torch.cat([prefix, pad + 1e3], 1), pmask)
        alone = top(x, one)
        ignored = TextTopLayers({**spec, "context_keys": False}).eval()
        ignored.load_hf_state(top.hf_state())
        y_ignored = ignored(x, one, prefix, None)
    assert torch.allclose(y[0], last[nodes], atol=1e-5)
    assert not torch.allclose(alone[0], last[nodes], atol=1e-3)  # without the context it differs
    assert torch.allclose(y_ignored, alone, atol=1e-6)  # a model not trained with context keys ignores them


def test_onnx_export_with_context_keys_matches_torch(bert, tmp_path):
    """The fusion graph of a model whose top layers take the text prefix gets the two prefix inputs; a batch
    without a prefix (a session's first turn) is fed one masked slot and gives torch's no-prefix result."""
    pytest.importorskip("onnxruntime")
    from synctva_ros.backends.export import batch_to_feeds, export_fusion, fusion_input_names
    from synctva_ros.core.batch import Batch
    import onnxruntime

    model = finetuned_model(bert)
    model.text_top.spec["context_keys"] = True
    names = fusion_input_names(model)
    assert names[-2:] == ["text_prefix", "text_prefix_mask"] and "context" not in names
    path = export_fusion(model, tmp_path / "m.onnx")
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == names
    inp = model_inputs(b=3, nt=7, seed=4)
    g = torch.Generator().manual_seed(5)
    prefix = torch.randn(3, 11, DIMS["text"], generator=g)
    pmask = torch.arange(11)[None] < torch.tensor([[11], [4], [0]])
    for pre in ((prefix, pmask), (None, None)):
        batch = Batch(*inp, labels=torch.zeros(3, dtype=torch.long), text_prefix=pre[0], text_prefix_mask=pre[1])
        got = sess.run(None, batch_to_feeds(batch, names))
        with torch.no_grad():
            ref = model.forward_batch(batch)
        for a, r in zip(got, ref):
            assert np.allclose(a, r.numpy(), atol=1e-4)
    with torch.no_grad():  # the prefix matters (row 0 has 11 context states)
        assert not torch.allclose(model(*inp, text_prefix=prefix, text_prefix_mask=pmask)[0][0], ref[0][0], atol=1e-4)
