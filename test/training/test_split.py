"""The validation split: whole training dialogues, the same for the same seed, recorded."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.core.batch import UtteranceFeatures
from synctva_ros.training.split import dialogue_ids_sha256, split_by_dialogue


def _items(dialogues: int, turns: int = 4) -> list[UtteranceFeatures]:
    return [UtteranceFeatures(sentence=np.zeros(2, np.float32), label=(d + t) % 3, dialogue_id=str(d),
                              utterance_index=t) for d in range(dialogues) for t in range(turns)]


def test_split_is_by_dialogue_and_counts_add_up():
    items = _items(40)
    train, valid, info = split_by_dialogue(items, 0.1, seed=0)
    tr_ids, va_ids = {u.dialogue_id for u in train}, {u.dialogue_id for u in valid}
    assert not tr_ids & va_ids and tr_ids | va_ids == {str(d) for d in range(40)}
    assert len(va_ids) == 4 and info["valid_dialogue_count"] == 4 and info["train_dialogue_count"] == 36
    assert sorted(va_ids) == info["valid_dialogues"] and len(valid) == 16 == info["valid_utterances"]
    assert len(train) + len(valid) == len(items) == info["train_utterances"] + info["valid_utterances"]
    assert info["valid_dialogues_sha256"] == dialogue_ids_sha256(va_ids)
    assert [u.utterance_index for u in valid[:4]] == [0, 1, 2, 3]  # the items' order is kept


def test_split_is_deterministic_per_seed_and_independent_of_item_order():
    items = _items(50)
    a = split_by_dialogue(items, 0.2, seed=3)[2]["valid_dialogues"]
    assert split_by_dialogue(list(reversed(items)), 0.2, seed=3)[2]["valid_dialogues"] == a
    assert split_by_dialogue(items, 0.2, seed=3)[2]["valid_dialogues"] == a
    assert split_by_dialogue(items, 0.2, seed=4)[2]["valid_dialogues"] != a  # another seed, other dialogues


def test_at_least_one_dialogue_on_each_side():
    _, valid, info = split_by_dialogue(_items(3), 0.1, seed=0)
    assert info["valid_dialogue_count"] == 1 and len(valid) == 4
    train, _, _ = split_by_dialogue(_items(2), 0.9, seed=0)
    assert len({u.dialogue_id for u in train}) == 1
    with pytest.raises(ValueError, match="at least 2"):
        split_by_dialogue(_items(1), 0.1, seed=0)
    with pytest.raises(ValueError, match="fraction"):
        split_by_dialogue(_items(5), 0.0, seed=0)


def test_a_pattern_holds_out_a_named_group_of_dialogues():
    items = [UtteranceFeatures(sentence=np.zeros(2, np.float32), label=0, dialogue_id=f"Ses0{s}{g}_impro0{d}",
                               utterance_index=t) for s in (1, 2, 3, 4) for g in "FM" for d in (1, 2) for t in (0, 1)]
    train, valid, info = split_by_dialogue(items, 0.1, seed=0, pattern="Ses04*")
    assert {u.dialogue_id[:5] for u in valid} == {"Ses04"} and "Ses04" not in {u.dialogue_id[:5] for u in train}
    assert info["valid_dialogue_count"] == 4 and info["train_dialogue_count"] == 12 and len(valid) == 8
    assert info["valid_pattern"] == "Ses04*" and info["valid_dialogues_sha256"] == dialogue_ids_sha256(
        {u.dialogue_id for u in valid})
    assert split_by_dialogue(items, 0.3, seed=7, pattern="Ses04*")[2]["valid_dialogues"] == info["valid_dialogues"]
    for bad in ("Ses05*", "Ses0*", "ses04*"):  # none, all, and case matters
        with pytest.raises(ValueError, match="valid_dialogues"):
            split_by_dialogue(items, 0.1, seed=0, pattern=bad)
