"""``synctva train`` from a literature feature pickle (issue 10): MMGCN's MELD layout, every branch trained,
read only through the restricted unpickler."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from synctva_ros.checkpoint import read_manifest
from synctva_ros.cli import main
from synctva_ros.datasets.pickles import LAYOUTS

SETTINGS = ["model.hidden=16", "model.heads=2", "model.graph_layers=1", "model.text_top_layers=0",
            "model.context_turns=0", "training.batch_size=8", "training.progress=false", "training.lr=3e-3",
            "training.epochs=6", "training.patience=6", "training.valid_fraction=0.2", "training.report_split=test",
            "training.modalities=[text, audio, visual]", "training.name=pickle"]


def _mmgcn_meld(path, n_dialogues: int = 24, seed: int = 0) -> int:
    """An MMGCN ``MELD_features_raw1.pkl``-layout file whose vectors carry their label (learnable); returns the
    number of test utterances."""
    rng = np.random.default_rng(seed)
    dims = {"text": 12, "audio": 6, "visual": 5}
    centres = {m: rng.normal(size=(7, d)) * 2 for m, d in dims.items()}
    f: dict = {k: {} for k in ("ids", "speakers", "labels", "text", "audio", "visual", "sentences")}
    vids = [f"d{i}" for i in range(n_dialogues)]
    for v in vids:
        n = int(rng.integers(3, 7))
        labels = [int(x) for x in rng.integers(0, 7, n)]
        f["ids"][v] = list(range(n))
        f["speakers"][v] = [np.eye(9)[i % 2].tolist() for i in range(n)]
        f["labels"][v] = labels
        for m, d in dims.items():
            f[m][v] = [centres[m][y] + rng.normal(size=d) for y in labels]
        f["sentences"][v] = [f"utterance {i}" for i in range(n)]
    f["train"], f["test"], f["_"] = vids[:18], vids[18:], None
    path.write_bytes(pickle.dumps(tuple(f[k] for k in LAYOUTS["mmgcn_meld"]), protocol=2))
    return sum(len(f["labels"][v]) for v in f["test"])


def test_synctva_train_on_a_feature_pickle(tmp_path, capsys):
    pkl, out = tmp_path / "MELD_features_raw1.pkl", tmp_path / "ckpt"
    n_test = _mmgcn_meld(pkl)
    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text(f"training:\n  feature_pickle: {pkl}\n  out_dir: {out}\n")
    assert main(["train", str(cfg_file), *sum((["--set", s] for s in SETTINGS), [])]) == 0
    man = read_manifest(out)
    assert man["active"] == {"text": True, "audio": True, "visual": True}
    assert man["dims"] == {"text": 12, "audio": 6, "visual": 5}
    ext = man["extractors"]["visual"]
    assert ext["kind"] == "feature_pickle" and ext["layout"] == "mmgcn_meld" and len(ext["sha256"]) == 64
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["report_split"] == "test" and metrics["report"]["n"] == n_test
    assert metrics["report"]["accuracy"] > 1 / 7 + 0.2  # the labels are in the vectors: far above chance


def test_a_pickle_with_code_is_refused_and_settings_that_cannot_apply_raise(tmp_path):
    from synctva_ros.config import ConfigError
    from synctva_ros.datasets.pickles import UnsafePickleError
    from synctva_ros.training.runs import train_from_file

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(UnsafePickleError):
        train_from_file(None, overrides=[f"training.feature_pickle={bad}", *SETTINGS,
                                         f"training.out_dir={tmp_path / 'o'}"])
    good = tmp_path / "f.pkl"
    _mmgcn_meld(good, n_dialogues=6)
    with pytest.raises(ValueError, match="text_top_layers"):
        train_from_file(None, overrides=[f"training.feature_pickle={good}", *SETTINGS, "model.text_top_layers=2",
                                         f"training.out_dir={tmp_path / 'o'}"])
    with pytest.raises(ConfigError):
        train_from_file(None, overrides=[f"training.feature_pickle={good}", "training.build_cache=true"])
