"""Session-wide test set-up.

- Every test run gets its own ROS_DOMAIN_ID (unless the caller set one, e.g. ``make test``) and
  ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, so parallel runs on one machine never cross
  (Kilted ignores ROS_LOCALHOST_ONLY; ENVIRONMENT notes).
- ``tiny_checkpoint``: a real Sync-TVA checkpoint trained in seconds on 48 MELD train utterances with
  the demo profile's real extractors (all-MiniLM-L6-v2, openSMILE eGeMAPSv02 on espeak-ng speech).
  Its predictions are poor, but every branch it reports active was trained: tests that need "a model"
  use it, never random weights.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MELD_DIR = Path(os.environ.get("SYNCTVA_DATA", ROOT.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def params_file_profile() -> str:
    """``runtime.profile`` of the shipped params file (config/emotion.yaml): the node's default profile, which the
    launch file, ``make demo`` and the command line must default to as well, so offline matches online."""
    import yaml

    params = yaml.safe_load((ROOT / "config" / "emotion.yaml").read_text())["emotion_node"]["ros__parameters"]
    return params["runtime"]["profile"]


@pytest.fixture(scope="session")
def meld_sample_csv() -> Path:
    """The shipped MELD dev sample (20 utterances, dialogues 40 and 24)."""
    return ROOT / "data" / "demo" / "meld_dev_sample.csv"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, meld_sample_csv: Path) -> Path:
    """Checkpoint directory of a tiny Sync-TVA (hidden 32) trained for 3 epochs (see module docstring)."""
    from synctva_ros.datasets.cache import build_cache, load_utterances
    from synctva_ros.training.config import load_training_config
    from synctva_ros.training.train import train

    root = tmp_path_factory.mktemp("tiny_ckpt")
    train_csv = MELD_DIR / "meld" / "train_sent_emo.csv"
    src = train_csv if train_csv.exists() else meld_sample_csv
    utts = load_utterances("meld", str(src))[:48]
    tcfg, cfg = load_training_config(None, [
        "training.name=tiny_test", f"training.cache_dir={root / 'cache'}", f"training.out_dir={root / 'ckpt'}",
        "training.epochs=3", "training.batch_size=16", "training.progress=false", "training.seed=0",
        "model.hidden=32", "model.heads=2", "model.graph_layers=1",
    ])
    cut = (3 * len(utts)) // 4
    for split, items in (("train", utts[:cut]), ("dev", utts[cut:])):
        build_cache("meld", split, cfg.features, tcfg.cache_dir, utterances=items, progress=False)
    return train(tcfg, cfg)


@pytest.fixture(scope="session")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a random 3-layer BERT (hidden 32) with its offline-trained WordPiece tokenizer (the feature
    tests' tiny encoder, ``test/features/conftest.py``), for the text-top-layer tests."""
    import importlib.util  # the features conftest is not importable by name (conftest modules share one name)

    spec = importlib.util.spec_from_file_location("_features_conftest", ROOT / "test" / "features" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_tiny_bert(tmp_path_factory.mktemp("tiny_bert3"), hidden=32, layers=3)
