from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from synctva_ros.datasets.iemocap import IEMOCAP_CLASSES
from synctva_ros.datasets.meld import MELD_CLASSES
from synctva_ros.datasets.pickles import (LAYOUTS, PICKLE_LABELS, UnsafePickleError, detect_layout,
                                          read_feature_pickle, safe_load_pickle)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _dialogues(rng, n_text=8, n_audio=5, n_visual=3, meld=False):
    vids = ["d0", "d1", "d2"]
    lens = {"d0": 3, "d1": 2, "d2": 4}
    n_cls = 7 if meld else 6
    f = {
        "ids": {v: [f"{v}_u{i}" for i in range(lens[v])] for v in vids},
        "speakers": {v: ([np.eye(9)[i % 9].tolist() for i in range(lens[v])] if meld
                         else ["M" if i % 2 else "F" for i in range(lens[v])]) for v in vids},
        "labels": {v: [int(x) for x in rng.integers(0, n_cls, lens[v])] for v in vids},
        "sentiments": {v: [int(x) for x in rng.integers(0, 3, lens[v])] for v in vids},
        "audio": {v: rng.normal(size=(lens[v], n_audio)).astype(np.float32) for v in vids},
        "visual": {v: [rng.normal(size=n_visual) for _ in range(lens[v])] for v in vids},
        "sentences": {v: [f"sentence {i}" for i in range(lens[v])] for v in vids},
        "train": ["d0", "d1"], "test": ["d2"], "_": None,
    }
    for t in ("text", "text2", "text3", "text4"):
        f[t] = {v: rng.normal(size=(lens[v], n_text)).astype(np.float32) for v in vids}
    return f


def _dump(f, layout, path, protocol):
    path.write_bytes(pickle.dumps(tuple(f[k] for k in LAYOUTS[layout]), protocol=protocol))
    return path


@pytest.mark.parametrize("layout,dataset", [("mmgcn_iemocap", "iemocap"), ("mmgcn_meld", "meld"),
                                            ("sdt_iemocap", "iemocap"), ("sdt_meld", "meld"),
                                            ("graphsmile_meld", "meld")])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_layouts_round_trip(tmp_path, layout, dataset, protocol):
    rng = np.random.default_rng(0)
    f = _dialogues(rng, meld=dataset == "meld")
    p = _dump(f, layout, tmp_path / "f.pkl", protocol)
    assert LAYOUTS[detect_layout(safe_load_pickle(p), dataset)] == LAYOUTS[layout]
    items = read_feature_pickle(p, dataset, "train")
    assert len(items) == 5 and [u.dialogue_id for u in items] == ["d0"] * 3 + ["d1"] * 2
    u = items[3]  # d1, utterance 0
    assert u.utterance_index == 0 and u.text.x.shape == (1, 8) and u.audio.x.shape == (1, 5)
    assert u.visual.x.shape == (1, 3) and float(u.text.t[0]) == 0.5
    np.testing.assert_allclose(u.text.x[0], f["text"]["d1"][0])
    np.testing.assert_allclose(u.sentence, f["text"]["d1"][0])
    np.testing.assert_allclose(u.audio.x[0], f["audio"]["d1"][0])
    names = MELD_CLASSES if dataset == "meld" else IEMOCAP_CLASSES
    src = PICKLE_LABELS[dataset]
    assert names[u.label] == src[f["labels"]["d1"][0]]  # remapped by name
    assert u.meta["utterance_id"] == "d1_u0" and u.meta["sentence_text"] == "sentence 0"
    assert len(read_feature_pickle(p, dataset, "test")) == 4
    assert len(read_feature_pickle(p, dataset, "all")) == 9
    if layout == "graphsmile_meld":
        assert u.meta["sentiment"] == f["sentiments"]["d1"][0]
    if "text4" in LAYOUTS[layout]:
        v = read_feature_pickle(p, dataset, "train", text_field="text4")[3]
        np.testing.assert_allclose(v.text.x[0], f["text4"]["d1"][0])


def test_meld_label_remap_is_by_name(tmp_path):
    f = _dialogues(np.random.default_rng(1), meld=True)
    f["labels"] = {"d0": [1, 0, 6], "d1": [4, 2], "d2": [3, 5, 0, 0]}
    items = read_feature_pickle(_dump(f, "mmgcn_meld", tmp_path / "m.pkl", 2), "meld", "train")
    assert [MELD_CLASSES[u.label] for u in items] == ["surprise", "neutral", "anger", "joy", "fear"]


def test_malicious_pickle_is_refused(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps((_Evil(),)))
    with pytest.raises(UnsafePickleError, match="system"):
        safe_load_pickle(p)
    with pytest.raises(UnsafePickleError):
        read_feature_pickle(p, "iemocap")
    with pytest.raises(UnsafePickleError):
        safe_load_pickle(pickle.dumps({"a": _Evil()}))


def test_other_objects_refused_and_numpy_allowed():
    import collections

    with pytest.raises(UnsafePickleError):
        safe_load_pickle(pickle.dumps(collections.Counter(a=1)))
    out = safe_load_pickle(pickle.dumps({"x": np.arange(3), "s": {1, 2}, "n": np.float64(2.5)}, protocol=2))
    assert out["s"] == {1, 2} and out["n"] == 2.5 and out["x"].tolist() == [0, 1, 2]


def test_wrong_layout_and_labels_raise(tmp_path):
    f = _dialogues(np.random.default_rng(2))
    p = _dump(f, "mmgcn_iemocap", tmp_path / "i.pkl", 4)
    with pytest.raises(ValueError, match="no known meld"):
        read_feature_pickle(p, "meld")
    with pytest.raises(ValueError, match="expects 12 fields"):
        read_feature_pickle(p, "iemocap", layout="sdt_iemocap")
    f["labels"]["d0"][0] = 9
    with pytest.raises(ValueError, match="label index 9"):
        read_feature_pickle(_dump(f, "mmgcn_iemocap", tmp_path / "j.pkl", 4), "iemocap")
