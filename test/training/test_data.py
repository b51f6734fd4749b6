from __future__ import annotations

import numpy as np

from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures
from synctva_ros.training.data import UtteranceDataset, class_counts, dialogue_contexts


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
