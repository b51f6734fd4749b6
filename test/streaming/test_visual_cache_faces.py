"""VisualCache with a face-expression encoder (issue 10): frames without a face give no node and are
remembered as such, and streamed features equal the batch extractor's on real photographs."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.streaming import StreamingFeatureCache
from synctva_ros.streaming.visual_cache import NO_FACE, encode_frames

_FACES = Path(os.environ.get("SYNCTVA_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data")) / "faces"


@pytest.fixture(scope="module")
def face_ext():
    """face-api's expression network behind MTCNN (real weights), 2 fps, at most 4 frames per window."""
    from synctva_ros.features.faces.embedding import FaceEmbeddingVisual
    from synctva_ros.features.faces.weights import FaceWeightsMissing

    try:
        return FaceEmbeddingVisual("face_api", fps=2.0, max_frames=4)
    except FaceWeightsMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def face_photo() -> np.ndarray:
    if not (_FACES / "labels.csv").is_file():
        pytest.skip(f"no labelled faces at {_FACES}")
    import cv2

    from synctva_ros.evaluation.faces import read_rgb

    row = next(r for r in csv.DictReader(open(_FACES / "labels.csv", encoding="utf-8")) if r["emotion"] == "happiness")
    return cv2.resize(read_rgb(_FACES / row["image"]), (150, 150), interpolation=cv2.INTER_AREA)


def _frames(photo: np.ndarray, t0: float, seconds: float, with_face: callable, fps: float = 10.0) -> list[TimedFrame]:
    """A grey 240x320 camera at ``fps``; the photo is pasted into the frames where ``with_face(i)``."""
    out = []
    for i in range(int(seconds * fps)):
        img = np.full((240, 320, 3), 90, np.uint8)
        if with_face(i):
            img[40:190, 80 + (i % 3):230 + (i % 3)] = photo  # a face that moves a little
        out.append(TimedFrame(t0 + i / fps, img))
    return out


def test_encode_frames_marks_frames_without_a_face(face_ext, face_photo) -> None:
    frames = _frames(face_photo, 0.0, 0.2, lambda i: i == 0)
    out = encode_frames(face_ext, [f.image for f in frames])
    assert out[0].shape == (face_ext.dim,) and out[1] is NO_FACE


@pytest.mark.parametrize("exact", [True, False])
def test_streamed_face_nodes_equal_the_batch_extractor(face_ext, face_photo, exact) -> None:
    # the face is in view for the first half of the utterance only: the later picked frames give no node
    frames = _frames(face_photo, 20.0, 3.0, lambda i: i < 15)
    win = UtteranceWindow(start=20.0, end=22.9, frames=frames)
    ref = face_ext(win)
    assert ref is not None and 0 < len(ref.x) < 4
    cache = StreamingFeatureCache({"visual": face_ext}, exact_visual=exact, oversample=2.0)
    for f in frames:
        cache.on_frame(f.stamp, f.image)
    got = cache.features_for(win)
    np.testing.assert_array_equal(got.visual.t, ref.t)
    if exact:  # the very frames the batch rule picks: the same embeddings
        np.testing.assert_allclose(got.visual.x, ref.x, rtol=1e-4, atol=1e-4)
    else:  # a neighbouring frame of the same face: the same expression space, close but not equal
        assert got.visual.x.shape == ref.x.shape
        cos = (got.visual.x * ref.x).sum(1) / np.linalg.norm(got.visual.x, axis=1) / np.linalg.norm(ref.x, axis=1)
        assert cos.min() > 0.9
        assert cache.stats["visual_miss"] == 0


def test_a_window_without_any_face_has_no_visual_modality(face_ext, face_photo) -> None:
    frames = _frames(face_photo, 5.0, 2.0, lambda i: False)
    win = UtteranceWindow(start=5.0, end=6.9, frames=frames)
    assert face_ext(win) is None
    cache = StreamingFeatureCache({"visual": face_ext}, exact_visual=True, oversample=2.0)
    for f in frames:
        cache.on_frame(f.stamp, f.image)
    feats = cache.features_for(win)
    assert feats.visual is None and feats.meta["streaming"]["visual"].endswith("no face")
