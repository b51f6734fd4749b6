"""Finding a run's caches, and deriving a layer-l text cache from an existing one (real MiniLM + openSMILE)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from synctva_ros.config import FeaturesConfig
from synctva_ros.datasets.cache import build_cache, find_cache, load_cache
from synctva_ros.features.text import TextEncoder
from synctva_ros.training.caches import build_text_layer_cache, load_split_cache
from synctva_ros.training.config import load_training_config


def test_text_layer_cache_reencodes_text_and_keeps_audio(tiny_cache, tmp_path):
    src = find_cache(tiny_cache, "meld", "dev")[0]
    cfg = FeaturesConfig(text_max_tokens=16, audio_max_nodes=8, text_layer=4)
    enc = TextEncoder(cfg.text_encoder, max_tokens=16, layer=4)
    path = build_text_layer_cache(src, cfg, tmp_path, encoder=enc)
    old, new = load_cache(src), load_cache(path)
    assert new.identities["text"]["layer"] == 4 and new.identities["audio"] == old.identities["audio"]
    assert new.header["key"] != old.header["key"] and new.header["derived_from"] == src.with_suffix("").name
    for a, b in zip(old.items, new.items):
        np.testing.assert_array_equal(a.audio.x, b.audio.x)
        tok = enc.encode_texts([b.meta["text"]])[0].tokens
        np.testing.assert_allclose(b.text.x, tok, atol=2e-2, rtol=1e-2)
        assert not np.allclose(a.text.x, b.text.x, atol=0.1)  # layer 4, not the last layer
    assert build_text_layer_cache(src, cfg, tmp_path, encoder=enc) == path  # an existing one is reused
    longer = load_cache(build_text_layer_cache(src, FeaturesConfig(text_max_tokens=32, text_layer=4), tmp_path / "x"))
    assert longer.identities["text"]["max_tokens"] == 32  # any text settings: only rows and audio are reused
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a synctva-feature-cache"):
        build_text_layer_cache(tmp_path / "bad.json", cfg, tmp_path / "y")


def test_load_split_cache_matches_extractors_limits_and_derives_the_text_layer(tiny_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    small = [f"training.cache_dir={cache}", "features.text_max_tokens=16", "features.audio_max_nodes=8",
             "features.text_layer=-1", "features.text_context_turns=0"]  # the tiny caches' text settings
    tcfg, cfg = load_training_config(None, small)
    c = load_split_cache(tcfg, cfg, "train", limit=5)
    assert len(c.items) == 5 and c.identities["text"]["layer"] == -1
    tcfg, cfg = load_training_config(None, [*small, "features.audio_max_nodes=9"])
    with pytest.raises(FileNotFoundError, match="synctva cache meld train"):
        load_split_cache(tcfg, cfg, "train")
    tcfg, cfg = load_training_config(None, [*small, "features.text_layer=3"])
    derived = load_split_cache(tcfg, cfg, "train")
    assert derived.identities["text"]["layer"] == 3 and len(derived.items) == 21
    assert len(find_cache(cache, "meld", "train")) == 2


def test_derived_context_cache_equals_a_cache_built_with_that_context(tiny_cache, tiny_utterances, tmp_path):
    """Re-encoding with 2 turns of context rebuilt from the rows gives the text `synctva cache` computes."""
    src = find_cache(tiny_cache, "meld", "dev")[0]
    cfg = FeaturesConfig(text_max_tokens=16, audio_max_nodes=8, text_layer=3, text_context_turns=2,
                         text_context_max_tokens=24)
    enc = TextEncoder(cfg.text_encoder, max_tokens=16, layer=3, context_turns=2, context_max_tokens=24)
    derived_path = build_text_layer_cache(src, cfg, tmp_path / "derived", encoder=enc)
    derived = load_cache(derived_path)
    direct = load_cache(build_cache("meld", "dev", cfg, tmp_path / "direct", progress=False,
                                    extractors={"text": enc, "audio": None, "visual": None},
                                    utterances=tiny_utterances("dev")))
    assert derived.identities["text"] == direct.identities["text"]
    assert derived.identities["text"]["context_turns"] == 2
    by_id = {it.meta["utterance_id"]: it for it in direct.items}
    plain = load_cache(src)
    changed = 0
    for a, b in zip(derived.items, plain.items):
        np.testing.assert_allclose(a.text.x, by_id[a.meta["utterance_id"]].text.x, atol=1e-3)
        np.testing.assert_array_equal(a.audio.x, b.audio.x)  # audio copied from the context-free source
        changed += a.text.x.shape == b.text.x.shape and not np.allclose(a.text.x, b.text.x, atol=0.1)
    assert changed >= len(plain.items) - 3  # all but the 3 first turns (no context) differ from layer -1
    # and back: a context-free cache derived from the context cache
    cfg0 = FeaturesConfig(text_max_tokens=16, audio_max_nodes=8, text_layer=3)
    back = load_cache(build_text_layer_cache(derived_path, cfg0, tmp_path / "back"))
    assert "context_turns" not in back.identities["text"]


def test_context_states_travel_through_derived_and_built_caches(tiny_cache, tiny_utterances, tmp_path):
    """features.text_context_states: each text's context states are stored (text_prefix_x) and come back as
    its nodes' prefix, the same from a derived cache and from `synctva cache`; the cache is found by them."""
    src = find_cache(tiny_cache, "meld", "dev")[0]
    cfg = FeaturesConfig(text_max_tokens=16, audio_max_nodes=8, text_layer=0, text_context_turns=2,
                         text_context_max_tokens=24, text_context_states=True)
    enc = TextEncoder(cfg.text_encoder, max_tokens=16, layer=0, context_turns=2, context_max_tokens=24,
                      context_states=True)
    derived = load_cache(build_text_layer_cache(src, cfg, tmp_path / "derived", encoder=enc))
    direct = load_cache(build_cache("meld", "dev", cfg, tmp_path / "direct", progress=False,
                                    extractors={"text": enc, "audio": None, "visual": None},
                                    utterances=tiny_utterances("dev")))
    assert derived.identities["text"]["prefix"] == direct.identities["text"]["prefix"] == "context_and_tag_states"
    by_id = {it.meta["utterance_id"]: it for it in direct.items}
    sizes = []
    for a in derived.items:
        b = by_id[a.meta["utterance_id"]]
        assert a.text.prefix.shape == b.text.prefix.shape and a.text.prefix.shape[1] == 384
        np.testing.assert_allclose(a.text.prefix, b.text.prefix, atol=1e-3)
        sizes.append(a.text.prefix.shape[0])
    assert min(sizes) >= 1 and max(sizes) > 10  # speaker tags at least; the context when there is one
    plain = FeaturesConfig(text_max_tokens=16, audio_max_nodes=8, text_layer=0, text_context_turns=2,
                           text_context_max_tokens=24)
    assert "prefix" not in load_cache(build_text_layer_cache(src, plain, tmp_path / "plain")).identities["text"]
    alone = TextEncoder(cfg.text_encoder, context_states=True)  # no context turns: nothing to hand over
    assert not alone.context_states and "prefix" not in alone.identity()


def test_a_relative_position_encoders_context_cache_is_found_not_derived_again(tiny_cache, tiny_utterances, tmp_path,
                                                                               caplog):
    """An MPNet-style encoder's context-states cache (identity prefix with the pair separators) is the configured
    one: `load_split_cache` picks it directly, without loading the encoder to derive it again."""
    from text_top_fixtures import make_tiny_mpnet

    mpnet = str(make_tiny_mpnet(tmp_path / "tiny_mpnet"))
    settings = {"text_encoder": mpnet, "text_max_tokens": 16, "audio_max_nodes": 8, "text_layer": 1,
                "text_context_turns": 2, "text_context_max_tokens": 24, "text_context_states": True}
    enc = TextEncoder(mpnet, max_tokens=16, layer=1, context_turns=2, context_max_tokens=24, context_states=True)
    built = build_cache("meld", "dev", FeaturesConfig(**settings), tmp_path / "cache", progress=False,
                        extractors={"text": enc, "audio": None, "visual": None}, utterances=tiny_utterances("dev"))
    own = load_cache(built)
    assert own.identities["text"]["prefix"] == "context_separators_and_tag_states"
    shutil.copy(find_cache(tiny_cache, "meld", "dev")[0], tmp_path / "cache")  # a MiniLM cache beside it
    shutil.copy(find_cache(tiny_cache, "meld", "dev")[0].with_suffix(".json"), tmp_path / "cache")
    tcfg, cfg = load_training_config(None, [f"training.cache_dir={tmp_path / 'cache'}",
                                            *(f"features.{k}={v}" for k, v in settings.items())])
    with caplog.at_level("INFO", logger="synctva_ros.training.caches"):
        found = load_split_cache(tcfg, cfg, "dev")
    assert "deriving" not in caplog.text
    assert found.header["key"] == own.header["key"] and len(found.items) == len(own.items)
