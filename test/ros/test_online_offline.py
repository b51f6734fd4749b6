"""The strongest test of the node: online (node process + replay process, real DDS) and offline
(`synctva evaluate`, no ROS) give the same predictions for the same bag."""

from __future__ import annotations

import os

import pytest

from synctva_ros.bags.make_bag import make_bag
from synctva_ros.config import load_config
from synctva_ros.evaluation.offline import evaluate


def test_node_on_replayed_bag_agrees_with_offline_evaluation(tmp_path, tiny_checkpoint, meld_sample_csv,
                                                             monkeypatch):
    from synctva_ros.ros.demo import run_demo

    bag = tmp_path / "bag"
    make_bag(meld_sample_csv, bag, max_utterances=5, size=(64, 48), fps=15)
    # both sides stream the audio (the node in its background threads, offline in this one); a generous
    # wait keeps a loaded machine from falling back to the batch extractor on one side only
    cfg = load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint), "features.streaming_wait_s": 30.0})
    offline = evaluate(bag, cfg, verbose=False)

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    assert os.environ.get("ROS_DOMAIN_ID")  # set per run by test/conftest.py
    online = run_demo(bag, rate=2.0, timeout_s=120, out_dir=tmp_path / "online",
                      extra_params=["runtime.profile:=demo", f"runtime.checkpoint:={tiny_checkpoint}",
                                    "features.streaming_wait_s:=30.0"])

    assert online["dropped_windows"] == 0 and online["predicted"] == offline["predicted"] == 5
    stats = offline["model"]["streaming"]["stats"]
    # offline each text stage ran at its final transcript and was used at close (the context had not changed)
    assert {k: v for k, v in stats.items() if not k.startswith("face_")} == {
        "audio_context": 5, "text_prefetched": 5, "text_prefetch_hit": 5}, stats
    assert stats["face_windows"] == 5  # the face stage ran on every window (64x48 frames: no face in them)
    diag = online["diagnostics"]
    assert diag["streaming.audio_context"] == "5" and diag["streaming.text_prefetched"] == "5"
    # online a window may close before its predecessor's turn is in the context (then encoded at close)
    assert int(diag.get("streaming.text_prefetch_hit", 0)) + int(diag.get("streaming.text_prefetch_miss", 0)) == 5
    off = {r["utterance_id"]: r for r in offline["rows"]}
    for r in online["rows"]:
        o = off[r["utterance_id"]]
        assert r["pred"] == o["pred"]
        assert r["probabilities"] == pytest.approx(o["probabilities"], abs=1e-5)  # float32 in the message
