"""Labelled bags as training recordings (issue 10): ``synctva train`` with ``training.raw_dir`` holding one folder
of rosbag2 recordings per split, the camera's faces as the visual branch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.bags.make_bag import make_bag
from synctva_ros.bags.recordings import BAG_SOURCE, bag_split_dir, read_bag_recordings
from synctva_ros.checkpoint import read_manifest
from synctva_ros.cli import main
from synctva_ros.config import load_config

ROOT = Path(__file__).resolve().parents[2]
MELD = ROOT / "data" / "demo" / "meld_dev_sample.csv"
FACES = Path(os.environ.get("SYNCTVA_DATA", ROOT.parent / "shared" / "data")) / "faces" / "labels.csv"
SETTINGS = ["model.hidden=16", "model.heads=2", "model.graph_layers=1", "model.text_top_layers=0",
            "features.text_max_tokens=16", "features.text_layer=-1", "features.text_context_turns=0",
            "features.audio_max_nodes=8", "features.visual_encoder=face_api", "features.visual_fps=2.0",
            "features.max_frames=4", "training.batch_size=4", "training.progress=false", "training.lr=3e-3",
            "training.epochs=2", "training.valid_fraction=0.5", "training.modalities=[text, audio, visual]",
            "training.build_cache=true", "training.name=bags", "training.report_split=dev"]


@pytest.fixture(scope="module")
def bag_root(tmp_path_factory):
    """robot_bags/train (two bags: dialogues 40 and 24 of the MELD sample) and robot_bags/dev (one bag), with a
    labelled face photograph of each utterance's emotion in view."""
    if not FACES.is_file():
        pytest.skip(f"no labelled faces at {FACES}")
    root = tmp_path_factory.mktemp("robot") / "robot_bags"
    kw = dict(size=(320, 240), fps=10, faces=FACES, max_utterances=4)
    make_bag(MELD, root / "train" / "living_room_1", dialogues=[40], **kw)
    make_bag(MELD, root / "train" / "kitchen_2", dialogues=[24], **kw)
    make_bag(MELD, root / "dev" / "hall_3", dialogues=[40], storage="sqlite3", **kw)
    return root


def test_bags_are_windowed_labelled_and_decoded_lazily(bag_root):
    cfg = load_config("demo", SETTINGS[:11])
    assert bag_split_dir(bag_root, "train") is not None and bag_split_dir(bag_root, "test") is None
    rec = read_bag_recordings(bag_root, "train", "meld", cfg)
    assert rec.counts()["bags"] == 2 and len(rec.utterances) == 8 and rec.unlabelled == 0
    assert {u.dialogue_id for u in rec.utterances} == {"kitchen_2/24", "living_room_1/40"}
    assert rec.identity()["source"] == BAG_SOURCE and len(rec.identity()["bags"]) == 2
    first, last = rec.utterances[0], rec.utterances[-1]
    media = rec(last)  # out of order: read again from the bag's start
    assert media.audio.size > 0.5 * 16000 and 0 < len(media.frames) <= 4 and media.frames.shape[1:] == (240, 320, 3)
    assert np.all(np.diff(media.frame_times) > 0) and media.frame_times[-1] <= media.duration_s
    assert rec(first).audio.size > 0 and first.text and first.label in cfg.model.class_names
    with pytest.raises(FileNotFoundError):
        read_bag_recordings(bag_root, "test", "meld", cfg)


def test_synctva_train_on_labelled_bags(bag_root, tmp_path):
    out, cache = tmp_path / "ckpt", tmp_path / "cache"
    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text(f"training:\n  raw_dir: {bag_root}\n  cache_dir: {cache}\n  out_dir: {out}\n")
    assert main(["train", str(cfg_file), *sum((["--set", s] for s in SETTINGS), [])]) == 0
    man = read_manifest(out)
    assert man["active"] == {"text": True, "audio": True, "visual": True}
    header = json.loads(next(cache.glob("meld_train_*.json")).read_text())
    assert header["speech"]["source"] == BAG_SOURCE and header["clips"]["labelled"] == 8
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["report_split"] == "dev" and metrics["report"]["n"] == 4
