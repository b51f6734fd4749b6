from __future__ import annotations

import pytest

from synctva_ros.config import FeaturesConfig
from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.features.registry import build_extractor, build_extractors, extractor_identities
from synctva_ros.features.text import TextEncoder


def test_registry_builds_configured_extractors(tiny_bert):
    cfg = FeaturesConfig(text_encoder=str(tiny_bert), text_max_tokens=8, audio_max_nodes=4, visual_weights="")
    ex = build_extractors(cfg)
    assert list(ex) == ["text", "audio", "visual"]
    assert isinstance(ex["text"], TextEncoder) and ex["text"].max_tokens == 8
    assert isinstance(ex["audio"], OpenSmileAudio) and ex["audio"].max_nodes == 4
    assert ex["visual"] is None  # no weights file: branch off
    ids = extractor_identities(ex)
    assert ids["visual"] is None and ids["audio"]["feature_set"] == "eGeMAPSv02"
    assert ids["text"]["max_tokens"] == 8
    only_audio = build_extractors(cfg, modalities=("audio",))
    assert only_audio["text"] is None and only_audio["audio"] is not None
    with pytest.raises(ValueError):
        build_extractor("smell", cfg)
