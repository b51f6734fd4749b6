"""The training loop on a tiny real cache: selection on held-out training dialogues, the report split, resume,
fine-tuned text top layers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from synctva_ros.checkpoint import load_checkpoint, load_text_top_checkpoint, read_manifest
from synctva_ros.config import ConfigError
from synctva_ros.datasets.cache import find_cache, load_cache
from synctva_ros.training.config import load_training_config
from synctva_ros.training.data import UtteranceDataset
from synctva_ros.training.saving import CheckpointTooLarge
from synctva_ros.training.train import RESUME_FILE, evaluate_model, train

SMALL = ["model.hidden=16", "model.heads=2", "model.graph_layers=1", "features.text_max_tokens=16",
         "features.audio_max_nodes=8", "training.batch_size=8", "training.progress=false", "training.lr=3e-3",
         "features.text_layer=-1", "features.text_context_turns=0"]  # the tiny caches' text, whatever the profile


def _cfg(cache, out, *extra):
    return load_training_config(None, [f"training.cache_dir={cache}", f"training.out_dir={out}", *SMALL, *extra])


def test_train_end_to_end_writes_a_loadable_checkpoint(tiny_cache, tmp_path):
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "ckpt", "training.epochs=2", "training.name=tiny")
    out = train(tcfg, cfg)
    man = read_manifest(out)
    assert man["name"] == "tiny" and man["class_names"] == list(cfg.model.class_names)
    assert man["active"] == {"text": True, "audio": True, "visual": False}
    assert man["extractors"]["visual"] is None
    assert man["extractors"]["text"]["name"] == "all-MiniLM-L6-v2" and man["extractors"]["audio"]["max_nodes"] == 8
    assert man["dims"]["text"] == 384 and man["dims"]["audio"] == 25
    # selection on one held-out training dialogue (7 utterances), the 21 dev utterances only reported
    val, rep = man["metrics"]["valid"], man["metrics"]["report"]
    assert val["n"] == 7 and rep["n"] == 21 and man["metrics"]["report_split"] == "dev"
    for m in (val, rep):
        assert {"accuracy", "weighted_f1", "macro_f1", "per_class", "confusion"} <= set(m)
    v = man["training"]["validation"]
    assert v["valid_dialogue_count"] == 1 and v["train_dialogue_count"] == 2 and len(v["valid_dialogues"]) == 1
    assert v["valid_utterances"] == 7 and v["train_utterances"] == 14 and len(v["valid_dialogues_sha256"]) == 64
    assert man["training"]["epochs"] == 2 and len(man["training"]["history"]) == 2
    assert {"valid_weighted_f1", "valid_macro_f1", "valid_accuracy", "train_s"} <= set(man["training"]["history"][0])
    assert "report_weighted_f1" not in man["training"]["history"][0]  # not scored per epoch unless asked
    assert sum(man["training"]["class_counts"].values()) == 14  # the training part only
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["valid"]["weighted_f1"] == val["weighted_f1"] and metrics["report"]["macro_f1"] == rep["macro_f1"]
    assert metrics["valid_split"]["valid_dialogues_sha256"] == v["valid_dialogues_sha256"]
    cal = man["training"]["calibration"]  # temperature fitted on the 7 validation utterances
    assert cal["split"] == "valid" and cal["n"] == 7 and cal["temperature"] > 0
    assert cal["nll_after"] <= cal["nll_before"] + 1e-9
    block = man["expert_fusion"]  # the pipeline's product of experts starts from that temperature
    assert block["experts"]["model"]["temperature"] == pytest.approx(cal["temperature"])
    assert block["experts"]["model"]["fit"]["split"] == "valid" and block["experts"]["visual"]["weight"] == 1.0
    model, _ = load_checkpoint(out, expected_extractors=man["extractors"])
    assert model.active["visual"] is False


def test_training_learns_the_tiny_task(tiny_cache, tmp_path):
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "ckpt", "training.epochs=20", "training.patience=20",
                     "model.modality_dropout=0.0", "model.dropout=0.0")
    man = read_manifest(train(tcfg, cfg))
    hist = man["training"]["history"]
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert man["metrics"]["report"]["accuracy"] > 2 / 7  # clearly above chance (1/7) on unseen phrasings


def _relabelled_copy(src, dst):
    """A copy of the cache directory whose dev utterances are all labelled neutral (other report data)."""
    shutil.copytree(src, dst)
    for p in find_cache(dst, "meld", "dev"):
        header = json.loads(p.with_suffix(".json").read_text())
        for r in header["utterances"]:
            r["label"] = "neutral"
        p.with_suffix(".json").write_text(json.dumps(header))
    return dst


def test_report_split_never_influences_the_selected_checkpoint(tiny_cache, tmp_path):
    other = _relabelled_copy(tiny_cache, tmp_path / "cache_b")
    outs = []
    for cache, name in ((tiny_cache, "a"), (other, "b")):
        tcfg, cfg = _cfg(cache, tmp_path / name, "training.epochs=4", "training.patience=4",
                         "training.report_each_epoch=true")
        outs.append(train(tcfg, cfg))
    ma, mb = (read_manifest(o) for o in outs)
    assert ma["metrics"]["report"]["confusion"] != mb["metrics"]["report"]["confusion"]  # the report data differ
    assert "report_weighted_f1" in ma["training"]["history"][0]  # scored every epoch, only logged
    assert ma["training"]["best_epoch"] == mb["training"]["best_epoch"]
    assert ma["metrics"]["valid"] == mb["metrics"]["valid"]
    wa, wb = (load_file(str(o / "model.safetensors")) for o in outs)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_gives_the_same_result(tiny_cache, tmp_path):
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "a", "training.epochs=3")
    a = train(tcfg, cfg)
    tcfg1, cfg1 = _cfg(tiny_cache, tmp_path / "b", "training.epochs=1")
    train(tcfg1, cfg1)
    tcfg2, cfg2 = _cfg(tiny_cache, tmp_path / "b", "training.epochs=3")
    b = train(tcfg2, cfg2, resume=True)
    ra = torch.load(a / RESUME_FILE, weights_only=True)
    rb = torch.load(b / RESUME_FILE, weights_only=True)
    assert ra["epoch"] == rb["epoch"] == 2
    for k, v in ra["model"].items():
        torch.testing.assert_close(v, rb["model"][k], rtol=0, atol=0)
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = [{k: v for k, v in h.items() if k != "train_s"} for h in json.loads(ra["history"])]
    assert strip == [{k: v for k, v in h.items() if k != "train_s"} for h in json.loads(rb["history"])]
    tcfg3, cfg3 = _cfg(tiny_cache, tmp_path / "b", "training.epochs=4", "training.split_seed=5")
    with pytest.raises(ValueError, match="another validation split"):
        train(tcfg3, cfg3, resume=True)


def test_context_turns_text_only_and_logit_adjusted_loss(tiny_cache, tmp_path):
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "ctx", "training.epochs=1", "model.context_turns=2",
                     "training.modalities=text", "training.loss=logit_adjusted", "training.report_split=",
                     "training.valid_dialogues=2")
    man = read_manifest(train(tcfg, cfg))
    v = man["training"]["validation"]
    assert (v["valid_pattern"], v["valid_dialogues"], v["valid_utterances"]) == ("2", ["2"], 7)
    assert man["active"] == {"text": True, "audio": False, "visual": False}
    assert man["extractors"]["audio"] is None and man["architecture"]["context_turns"] == 2
    assert man["training"]["loss_used"] == "logit_adjusted" and man["metrics"]["report"] is None


def test_missing_cache_says_how_to_build(tmp_path):
    tcfg, cfg = load_training_config(None, [f"training.cache_dir={tmp_path}", f"training.out_dir={tmp_path}/o",
                                            *SMALL])
    with pytest.raises(FileNotFoundError, match="synctva cache meld train"):
        train(tcfg, cfg)


def test_top_layers_fine_tune_inside_train(tiny_cache, tmp_path):
    """model.text_top_layers > 0 in `synctva train`: a layer-4 cache is derived, the top 2 MiniLM layers train
    at their own rate, the checkpoint holds their float16 deltas and the base encoder's hash."""
    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    extra = ["training.epochs=2", "features.text_layer=4", "model.text_top_layers=2", "training.encoder_lr=1e-3"]
    tcfg, cfg = _cfg(cache, tmp_path / "ck", *extra)
    out = train(tcfg, cfg)
    assert len(find_cache(cache, "meld", "train")) == 2  # the last-layer cache and the derived layer-4 one
    size_mb = (out / "model.safetensors").stat().st_size / 1e6
    assert 1.0 < size_mb < 30.0  # 2 MiniLM layers as float16 deltas (~7 MB) + the fusion weights
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        deltas = {k: fh.get_tensor(k) for k in fh.keys() if k.startswith("text_encoder.encoder.layer.")}
    assert len(deltas) == 32 and all(d.dtype == torch.float16 for d in deltas.values())
    assert any(float(d.abs().max()) > 0 for d in deltas.values())  # the layers moved
    model, man = load_text_top_checkpoint(out, base="all-MiniLM-L6-v2")
    assert man["text_top"]["spec"]["layers"] == [4, 5] and man["extractors"]["text"]["layer"] == 4
    assert man["text_top"]["base"]["weights_sha256"] == man["extractors"]["text"]["weights_sha256"]
    assert man["text_top"]["delta_dtype"] == "float16" and man["training"]["encoder_lr"] == 1e-3
    assert man["metrics"]["report"]["n"] == 21 and "macro_f1" in man["metrics"]["valid"]
    c = load_cache(find_cache(cache, "meld", "dev")[0])
    assert c.identities["text"]["layer"] == 4  # newest first: the derived cache
    _, pred, probs = evaluate_model(model, UtteranceDataset(c.items, model.dims, 0, model.active))
    assert pred.shape == (len(c.items),) and np.isfinite(probs).all() and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    tcfg, cfg = _cfg(cache, tmp_path / "too_big", *extra, "training.max_checkpoint_mb=2")
    with pytest.raises(CheckpointTooLarge, match="max_checkpoint_mb=2"):
        train(tcfg, cfg)
    assert not (tmp_path / "too_big" / "model.safetensors").exists()


def test_top_layers_attend_over_the_context_states(tiny_cache, tmp_path):
    """features.text_context_states with model.text_top_layers: the fine-tuned layers take the context's
    states (the checkpoint's layer spec says so), a linear warm-up/decay schedule runs, resume keeps it,
    and the restored model's predictions depend on the prefix."""
    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    extra = ["features.text_layer=4", "model.text_top_layers=2", "features.text_context_turns=2",
             "features.text_context_max_tokens=24", "features.text_context_states=true",
             "training.lr_schedule=linear", "training.warmup_fraction=0.2", "training.encoder_lr=1e-3"]
    tcfg, cfg = _cfg(cache, tmp_path / "ck", "training.epochs=2", *extra)
    out = train(tcfg, cfg)
    man = read_manifest(out)
    assert man["text_top"]["spec"]["context_keys"] is True
    assert man["extractors"]["text"]["prefix"] == "context_and_tag_states"
    assert man["training"]["lr_schedule"] == "linear"
    st = torch.load(out / RESUME_FILE, weights_only=True)
    assert st["scheduler"]["last_epoch"] >= 2 and st["scheduler"]["_last_lr"] == [0.0, 0.0]  # decayed to 0 at the end
    model, _ = load_text_top_checkpoint(out, base="all-MiniLM-L6-v2")
    c = load_cache(find_cache(cache, "meld", "dev")[0])
    assert c.identities["text"].get("prefix") == "context_and_tag_states"
    ds = UtteranceDataset(c.items, model.dims, 0, model.active)
    _, _, probs = evaluate_model(model, ds)
    for it in c.items:
        it.text.prefix = None
    _, _, alone = evaluate_model(model, UtteranceDataset(c.items, model.dims, 0, model.active))
    assert np.isfinite(probs).all() and not np.allclose(probs, alone, atol=1e-4)


def test_lora_trains_the_factors_only_and_stores_them(tiny_cache, tmp_path):
    """training.lora_rank > 0: the top layers' pretrained weights stay frozen, the checkpoint holds their LoRA
    factors (no dense delta) and is a fraction of the full fine-tuning one; resume continues it."""
    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    extra = ["features.text_layer=4", "model.text_top_layers=2", "training.encoder_lr=3e-3", "training.lora_rank=4"]
    tcfg, cfg = _cfg(cache, tmp_path / "ck", "training.epochs=1", *extra)
    out = train(tcfg, cfg)
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        text = {k: fh.get_tensor(k) for k in fh.keys() if k.startswith("text_encoder.")}
    factors = {k: v for k, v in text.items() if k.startswith("text_encoder.lora.")}
    assert len(factors) == 2 * 2 * 6 and set(text) == {*factors, "text_encoder.top.special"}
    assert all(v.dtype == torch.float16 for v in factors.values())
    assert any(float(v.abs().max()) > 0 for k, v in factors.items() if k.endswith(".B"))  # B left its zero start
    assert (out / "model.safetensors").stat().st_size < 2e6  # full fine-tuning of these 2 layers: ~7 MB
    model, man = load_text_top_checkpoint(out, base="all-MiniLM-L6-v2")
    assert man["text_top"]["lora"]["rank"] == 4 and man["training"]["lora_rank"] == 4
    c = load_cache(find_cache(cache, "meld", "dev")[0])
    _, _, probs = evaluate_model(model, UtteranceDataset(c.items, model.dims, 0, model.active))
    assert np.isfinite(probs).all()
    tcfg, cfg = _cfg(cache, tmp_path / "ck", "training.epochs=2", *extra)  # resume: the LoRA state loads back
    train(tcfg, cfg, resume=True)
    assert json.loads((out / "metrics.json").read_text())["history"][-1]["epoch"] == 2
    tcfg, cfg = _cfg(cache, tmp_path / "small", "training.epochs=1", *extra, "training.max_checkpoint_mb=0.05")
    with pytest.raises(CheckpointTooLarge, match="as float16 LoRA factors"):
        train(tcfg, cfg)


def test_the_weights_moving_average_is_selected_saved_and_resumed(tiny_cache, tmp_path):
    """training.ema_decay: the checkpoint holds the weights' moving average, not the last step's weights, and a
    resumed run ends with the same average and checkpoint as an uninterrupted one."""
    ema = ["training.ema_decay=0.8", "training.patience=0"]
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "one", "training.epochs=1", *ema)
    one = train(tcfg, cfg)  # one epoch: that epoch is the selected one
    st = torch.load(one / RESUME_FILE, weights_only=True)
    average = {k.removeprefix("module."): v for k, v in st["ema"].items() if k.startswith("module.")}
    assert average.keys() == st["model"].keys() and int(st["ema"]["n_averaged"]) == 2  # 14 utterances, batches of 8
    saved = load_file(str(one / "model.safetensors"))
    assert saved and all(torch.equal(saved[k], average[k]) for k in saved)
    assert any(not torch.equal(saved[k], st["model"][k]) for k in saved)  # not the live weights
    with pytest.raises(ConfigError, match="ema_decay"):
        _cfg(tiny_cache, tmp_path / "bad", "training.ema_decay=1.0")[0].validate()
    tcfg, cfg = _cfg(tiny_cache, tmp_path / "a", "training.epochs=3", *ema)
    a = train(tcfg, cfg)
    tcfg1, cfg1 = _cfg(tiny_cache, tmp_path / "b", "training.epochs=1", *ema)
    train(tcfg1, cfg1)
    tcfg2, cfg2 = _cfg(tiny_cache, tmp_path / "b", "training.epochs=3", *ema)
    b = train(tcfg2, cfg2, resume=True)
    ra, rb = (torch.load(r / RESUME_FILE, weights_only=True) for r in (a, b))
    assert ra["ema"].keys() == rb["ema"].keys() and all(torch.equal(ra["ema"][k], rb["ema"][k]) for k in ra["ema"])
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_length_grouped_batches_train_and_resume_to_the_same_weights(tiny_cache, tmp_path):
    """training.group_by_length: batches drawn by length (a function of seed and epoch only), so a run resumed after
    epoch 1 ends with the weights of an uninterrupted one; the manifest records the setting."""
    grouped = ["training.group_by_length=true", "training.patience=0"]
    a = train(*_cfg(tiny_cache, tmp_path / "a", "training.epochs=2", *grouped))
    assert read_manifest(a)["training"]["group_by_length"] is True
    train(*_cfg(tiny_cache, tmp_path / "b", "training.epochs=1", *grouped))
    b = train(*_cfg(tiny_cache, tmp_path / "b", "training.epochs=2", *grouped), resume=True)
    ra, rb = (torch.load(r / RESUME_FILE, weights_only=True)["model"] for r in (a, b))
    assert ra.keys() == rb.keys() and all(torch.equal(ra[k], rb[k]) for k in ra)
