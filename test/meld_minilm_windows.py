"""The shipped ``models/meld_minilm`` on real windows, for the network-stage tests (test/test_pipeline_subsets.py,
test/backends/test_quantize.py).

A plain module (not a conftest): tests import it by name (``test/`` is on ``sys.path``). The windows are the
shipped MELD dev sample's first utterances (``data/demo/meld_dev_sample.csv``, dialogue 40: espeak-ng speech,
the transcripts), extracted in order by the demo pipeline so that each carries its dialogue context's word
pieces as the text layers' keys, as in ``synctva evaluate``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synctva_ros.config import load_config, resolve_path
from synctva_ros.core.batch import Batch, UtteranceFeatures
from synctva_ros.evaluation.offline import dataset_windows
from synctva_ros.pipeline import EmotionPipeline

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "demo" / "meld_dev_sample.csv"


def demo_pipeline(cache_dir: Path, backend: str = "torch", split_text_top: bool = False,
                  **overrides) -> EmotionPipeline:
    """The demo profile's pipeline with ``models/meld_minilm`` on ``backend`` (one thread; skips without espeak-ng).

    The fine-tuned text layers stay inside the network unless ``split_text_top`` (these tests are about the network
    stage); ``overrides`` are more ``load_config`` settings."""
    from synctva_ros.datasets.speech import espeak_binary

    try:
        espeak_binary()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    cfg = load_config("demo", {"runtime.checkpoint": str(resolve_path("models/meld_minilm")),
                               "runtime.backend": backend, "runtime.threads": 1, "runtime.cache_dir": str(cache_dir),
                               "features.streaming": False, "features.face_expert": False,
                               "features.split_text_top": split_text_top, **overrides})
    return EmotionPipeline(cfg)


def window_features(pipe: EmotionPipeline, n: int = 8) -> list[tuple[UtteranceFeatures, Batch]]:
    """The first ``n`` windows of the sample, each extracted after the previous ones were added to the context.

    Returns:
        ``(features, one-row batch)`` per window; the pipeline's dialogue context is reset afterwards.
    """
    out = []
    for window, _label in dataset_windows(SAMPLE, limit=n):
        feats, _ = pipe.extract(window)
        out.append((feats, pipe._collate(feats)))
        pipe.dialogue.add_window(window, feats.sentence)
    pipe.reset_dialogue()
    assert any(b.text_prefix is not None and bool(b.text_prefix_mask.any()) for _, b in out), "no context keys"
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, float64."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
