"""The text extractor with a relative-position encoder (MPNet): truncated layers and the context prefix.

A tiny random MPNet (``text_top_fixtures.make_tiny_mpnet``) stands in for all-mpnet-base-v2 so this runs
without its weights. ``layer = l`` keeps only the encoder's first l layers (MPNet's relative bias lives on
the encoder and must still reach them); with context states, the prefix is every token between ``<s>`` and the
utterance, the pair separators included, in order (features/text.py module docstring).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from text_top_fixtures import make_tiny_mpnet

from synctva_ros.features.dialogue import Turn
from synctva_ros.features.text import TextEncoder

TURNS = [Turn("Ross", "we were on a break!"), Turn("Monica", "Hey, how are you doing today?")]
TEXT = "you're unbelievable"


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mpnet(tmp_path_factory.mktemp("tiny_mpnet_text"))


def _full_states(path: Path, ids: dict) -> torch.Tensor:
    from transformers import AutoModel

    full = AutoModel.from_pretrained(str(path)).eval()
    with torch.no_grad():
        out = full(**{k: torch.tensor([v]) for k, v in ids.items()}, output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0]


def _with_context(path: Path) -> tuple:
    """An extractor of layer 1 with two turns of context states on ``path``; its encoding of TEXT after TURNS by
    "Rachel", and the pair sequence it ran: ``(enc, encoding, ids, node mask, prefix mask, word pieces)``."""
    enc = TextEncoder(str(path), layer=1, context_turns=2, context_states=True)
    encoding = enc.encode_texts([TEXT], [TURNS], ["Rachel"])[0]
    ids, nodes, others = enc._pair_inputs(TEXT, TURNS, "Rachel")
    return enc, encoding, ids, nodes, others, enc.tokenizer.convert_ids_to_tokens(ids["input_ids"])


def test_truncated_mpnet_gives_the_full_models_layer(tiny_mpnet):
    enc = TextEncoder(str(tiny_mpnet), layer=2)
    assert enc._truncated and len(enc.model.encoder.layer) == 2
    tokens = enc.encode_texts([TEXT])[0].tokens
    ids = enc.tokenizer(TEXT, return_special_tokens_mask=True)
    special = torch.tensor(ids.pop("special_tokens_mask")).bool()
    h = _full_states(tiny_mpnet, dict(ids))
    assert torch.allclose(torch.from_numpy(tokens), h[2][~special], atol=1e-5)


def test_context_prefix_is_every_token_before_the_utterance(tiny_mpnet):
    enc, (tokens, _, prefix), ids, nodes, _, pieces = _with_context(tiny_mpnet)
    assert enc.identity()["prefix"] == "context_separators_and_tag_states"
    first = nodes.index(True)
    assert pieces[0] == "<s>" and pieces[-1] == "</s>" and all(nodes[first:-1]) and not nodes[-1]
    assert pieces[1:first].count("</s>") == 2  # the pair separators are in the prefix, at their places
    h = _full_states(tiny_mpnet, ids)
    assert prefix.shape[0] == first - 1
    assert torch.allclose(torch.from_numpy(prefix), h[1][1:first], atol=1e-5)
    assert torch.allclose(torch.from_numpy(tokens), h[1][first:-1], atol=1e-5)
    # a session's first turn: "<s> Rachel: utterance </s>", the prefix is the speaker tag
    tokens0, _, prefix0 = enc.encode_texts([TEXT], [[]], ["Rachel"])[0]
    assert prefix0.shape[0] == len(enc.tokenizer("Rachel:", add_special_tokens=False)["input_ids"])
    assert tokens0.shape == tokens.shape


def test_bert_context_prefix_is_unchanged(bert):
    enc, (_, _, prefix), _, nodes, others, pieces = _with_context(bert)
    assert enc.identity()["prefix"] == "context_and_tag_states"
    assert prefix.shape[0] == sum(others) == len(pieces) - sum(nodes) - 3  # [CLS], [SEP], [SEP] left out
