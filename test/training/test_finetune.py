"""Layer-l text cache from an existing cache, and training with fine-tuned top layers (real MiniLM + openSMILE)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synctva_ros.config import FeaturesConfig
from synctva_ros.datasets.cache import find_cache, load_cache
from synctva_ros.training.config import load_training_config
from synctva_ros.training.finetune import build_text_layer_cache, finetune


def test_text_layer_cache_reencodes_text_and_keeps_audio(tiny_cache, tmp_path):
    from synctva_ros.features.text import TextEncoder

    src = find_cache(tiny_cache, "meld", "dev")[0]
    cfg = FeaturesConfig(text_max_tokens=16, audio_max_nodes=8, text_layer=4)
    enc = TextEncoder(cfg.text_encoder, max_tokens=16, layer=4)
    path = build_text_layer_cache(src, cfg, tmp_path, encoder=enc)
    old, new = load_cache(src), load_cache(path)
    assert new.identities["text"]["layer"] == 4 and new.identities["audio"] == old.identities["audio"]
    assert new.header["key"] != old.header["key"]
    for a, b in zip(old.items, new.items):
        np.testing.assert_array_equal(a.audio.x, b.audio.x)
        tok, _ = enc.encode_texts([b.meta["text"]])[0]
        np.testing.assert_allclose(b.text.x, tok, atol=2e-2, rtol=1e-2)
        assert not np.allclose(a.text.x, b.text.x, atol=0.1)  # layer 4, not the last layer
    with pytest.raises(ValueError, match="max_tokens"):
        build_text_layer_cache(src, FeaturesConfig(text_max_tokens=32, text_layer=4), tmp_path / "x")


def test_finetune_trains_top_layers_and_saves_deltas(tiny_cache, tmp_path):
    from synctva_ros.checkpoint import load_text_top_checkpoint

    cfg_f = FeaturesConfig(text_max_tokens=16, audio_max_nodes=8, text_layer=4)
    for split in ("train", "dev"):
        build_text_layer_cache(find_cache(tiny_cache, "meld", split)[0], cfg_f, tmp_path / "cache")
    tcfg, cfg = load_training_config(None, [f"training.cache_dir={tmp_path / 'cache'}", "training.epochs=2",
                                            f"training.out_dir={tmp_path / 'ck'}", "training.progress=false",
                                            "features.text_max_tokens=16", "features.audio_max_nodes=8",
                                            "features.text_layer=4", "model.text_top_layers=2", "model.hidden=16",
                                            "training.batch_size=8"])
    res = finetune(tcfg, cfg, encoder_lr=1e-3)
    assert len(res["history"]) == 2 and res["checkpoint_mb"] < 20
    model, man = load_text_top_checkpoint(res["checkpoint"], base="all-MiniLM-L6-v2")
    deltas = [v for k, v in man["_extra_tensors"].items() if "encoder.layer" in k]
    assert len(deltas) == 32 and any(float(d.abs().max()) > 0 for d in deltas)  # the layers moved
    assert man["text_top"]["spec"]["layers"] == [4, 5] and man["extractors"]["text"]["layer"] == 4
    c = load_cache(find_cache(tmp_path / "cache", "meld", "dev")[0])
    from synctva_ros.training.data import UtteranceDataset
    from synctva_ros.training.train import evaluate_model

    _, pred, probs = evaluate_model(model, UtteranceDataset(c.items, model.dims, 0, model.active))
    assert pred.shape == (len(c.items),) and torch.isfinite(torch.as_tensor(pred)).all()
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1.0, atol=1e-5)  # the restored model runs
