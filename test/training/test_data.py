from __future__ import annotations

import numpy as np

from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures
from synctva_ros.training.data import UtteranceDataset, class_counts, dialogue_contexts, make_loader


def _u(d, i, label=0, audio=True):
    x = np.full((2, 4), float(i), np.float32)
    return UtteranceFeatures(text=ModalityFeatures(x, np.array([0.25, 0.75], np.float32)),
                             audio=ModalityFeatures(np.ones((3, 2), np.float32), np.linspace(0, 1, 3,
                                                    dtype=np.float32)) if audio else None,
                             sentence=np.full(4, 10 * int(d) + i, np.float32), label=label, dialogue_id=d,
                             utterance_index=i)


def test_contexts_are_previous_turns_of_the_same_dialogue():
    items = [_u("1", 2), _u("1", 0), _u("2", 0), _u("1", 1), _u("1", 3)]
    ctx = dialogue_contexts(items, 2)
    assert [c[0] for c in ctx[0]] == [10, 11]  # utterance 2 of dialogue 1 sees 0 and 1
    assert ctx[1] == [] and ctx[2] == []
    assert [c[0] for c in ctx[4]] == [11, 12]  # only the last two turns
    assert dialogue_contexts(items, 0) == [[] for _ in items]


def test_dataset_collates_batches_with_context_and_inactive_modalities():
    items = [_u("1", 0, 1), _u("1", 1, 2, audio=False)]
    ds = UtteranceDataset(items, {"text": 4, "audio": 2, "visual": 8}, context_turns=3,
                          active={"text": True, "audio": False, "visual": False})
    b = ds.collate([0, 1])
    assert b.text.shape == (2, 2, 4) and b.labels.tolist() == [1, 2]
    assert not b.audio_mask.any()  # audio inactive: absent in every row
    assert b.context.shape == (2, 3, 4) and b.context_mask.tolist() == [[False] * 3, [False, False, True]]
    assert class_counts(items, 3) == [0, 1, 1]


def _text_only(i, n, m):
    rng = np.random.default_rng(i)
    prefix = rng.standard_normal((m, 4)).astype(np.float32) if m else None
    return UtteranceFeatures(text=ModalityFeatures(np.ones((n, 4), np.float32), np.linspace(0, 1, n, dtype=np.float32),
                                                   prefix=prefix), label=i % 3, dialogue_id=str(i), utterance_index=0)


def _useful_fraction(batches, lengths):
    return sum(lengths[i] for b in batches for i in b) / sum(max(lengths[i] for i in b) * len(b) for b in batches)


def test_length_grouped_batches_pad_less_and_still_cover_every_utterance_once():
    rng = np.random.default_rng(0)
    sizes = [(int(rng.integers(1, 20)), int(rng.integers(0, 60))) for _ in range(640)]  # (nodes, prefix states)
    items = [_text_only(i, n, m) for i, (n, m) in enumerate(sizes)]
    ds = UtteranceDataset(items, {"text": 4, "audio": 2, "visual": 8})
    lengths = ds.text_lengths()
    assert lengths == [n + m for n, m in sizes]
    plain = list(make_loader(ds, 16, shuffle=True, seed=7).batch_sampler)
    grouped = list(make_loader(ds, 16, shuffle=True, seed=7, group_by_length=True).batch_sampler)
    for batches in (plain, grouped):
        assert sorted(i for b in batches for i in b) == list(range(len(items)))  # each utterance once per epoch
        assert all(len(b) == 16 for b in batches)
    assert _useful_fraction(grouped, lengths) > 0.9 > 0.7 > _useful_fraction(plain, lengths)
    again = list(make_loader(ds, 16, shuffle=True, seed=7, group_by_length=True).batch_sampler)
    other = list(make_loader(ds, 16, shuffle=True, seed=8, group_by_length=True).batch_sampler)
    assert again == grouped and other != grouped  # a function of the seed only
    batch = ds.collate(grouped[1])
    assert batch.text_prefix.shape[1] == max(0 if items[i].text.prefix is None else items[i].text.prefix.shape[0]
                                             for i in grouped[1])
