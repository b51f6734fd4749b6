"""Visual nodes from the face-expression networks, on real photographs placed in camera-sized frames."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.config import FeaturesConfig
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.features import registry
from synctva_ros.features.faces.embedding import FACE_ENCODERS, FaceEmbeddingVisual


def _canvas(*faces: tuple[np.ndarray, int, int, int], shape: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A grey frame with each ``(photo, x, y, side)`` pasted as a ``side`` x ``side`` square at (x, y)."""
    import cv2

    img = np.full((*shape, 3), 90, np.uint8)
    for photo, x, y, side in faces:
        img[y:y + side, x:x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    return img


@pytest.fixture(scope="module")
def ext() -> FaceEmbeddingVisual:
    return FaceEmbeddingVisual("face_api", fps=4.0, max_frames=8)


def test_nodes_are_the_largest_faces_embeddings(ext, photos):
    a, b = photos[0][0], photos[2][0]
    frames = [_canvas((a, 20, 20, 150)), _canvas(), _canvas((b, 150, 40, 150), (a, 10, 10, 80))]
    window = UtteranceWindow(10.0, 11.0, "hi", [TimedFrame(10.0 + 0.25 * i + 0.125, f) for i, f in enumerate(frames)])
    out = ext(window)
    assert out is not None and out.x.shape == (2, 256) and out.x.dtype == np.float32
    np.testing.assert_allclose(out.t, [0.125, 0.625], atol=1e-6)  # the faceless frame gives no node
    assert ext.no_face >= 1
    # the third frame's node is the larger face (photo b), encoded as the expert encodes it
    box = max(ext.expert.detector.detect(frames[2]), key=lambda f: f.area).as_list()
    assert box[0] > 120  # the larger face is b's, on the right
    np.testing.assert_allclose(out.x[1], ext.expert.classify(frames[2], [box])[1][0], atol=1e-5)
    # the first node equals the same photograph alone at that place
    np.testing.assert_allclose(out.x[0], ext.extract_frames([frames[0]], [0.0], 1.0).x[0], atol=1e-6)
    assert not np.allclose(out.x[0], out.x[1], atol=1e-2)


def test_central_policy_and_absent_faces(photos):
    a, b = photos[0][0], photos[2][0]
    frame = _canvas((b, 0, 0, 110), (a, 130, 80, 80))  # b larger in the corner, a smaller at the centre
    central = FaceEmbeddingVisual("face_api", policy="central")
    largest = FaceEmbeddingVisual("face_api", policy="largest")
    xc, xl = central.extract_frames([frame], [0.5], 1.0).x[0], largest.extract_frames([frame], [0.5], 1.0).x[0]
    assert not np.allclose(xc, xl, atol=1e-2)
    assert central.extract_frames([_canvas(), _canvas()], [0.1, 0.2], 1.0) is None
    assert central.extract_frames(np.zeros((0, 8, 8, 3), np.uint8), [], 1.0) is None
    assert central(UtteranceWindow(0.0, 1.0, "x")) is None
    with pytest.raises(ValueError):
        FaceEmbeddingVisual("resnet50")
    with pytest.raises(ValueError):
        FaceEmbeddingVisual("face_api", policy="loudest")


def test_max_frames_thins_evenly_and_times_are_clipped(ext, photos):
    frames = [_canvas((photos[1][0], 60, 40, 150))] * 12
    out = FaceEmbeddingVisual("face_api", max_frames=3).extract_frames(frames, np.linspace(0, 2.2, 12), 2.0)
    assert out.x.shape == (3, 256)
    np.testing.assert_allclose(out.t, [0.0, 0.6, 1.0], atol=1e-6)  # 1.1 / 2.0 ; 2.2 s is past the end: 1.0


def test_identity_and_registry(ext):
    ident = ext.identity()
    assert ident["kind"] == "face_expression_embedding" and ident["dim"] == 256 and ident["fps"] == 4.0
    assert ident["experts"][0]["name"] == "face_api_expression"
    assert len(next(iter(ident["experts"][0]["files"].values()))) == 64  # sha256 of the weight file
    assert ident["detector"]["name"] == "mtcnn" and set(ident["detector"]["files"]) == {"pnet.pt", "rnet.pt",
                                                                                          "onet.pt"}
    assert set(registry.FACE_ENCODERS) == set(FACE_ENCODERS)
    built = registry.build_extractor("visual", FeaturesConfig(visual_encoder="fer+face_api", max_frames=4))
    assert isinstance(built, FaceEmbeddingVisual) and built.dim == 384 and built.identity()["max_frames"] == 4
    assert registry.build_extractor("visual", FeaturesConfig(visual_encoder="resnet50", visual_weights="")) is None
