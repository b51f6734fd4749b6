"""Detectors on real photographs, the face-crop rule on crops down to 40x40, and 640x480 frames."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.features.faces.detect import (CROP_MAX_SIDE, FaceBox, find_faces, looks_like_crop,
                                               make_detector)
from synctva_ros.features.faces.experts import VisualExpert


@pytest.fixture(scope="module")
def mtcnn():
    return make_detector("mtcnn")


@pytest.fixture(scope="module")
def crops_and_full(mtcnn, photos):
    """(tight face box of each photograph, the expert's class on the photograph) and the expert."""
    vx = VisualExpert(detector=mtcnn)
    boxes = [mtcnn.detect(img)[0] for img, _ in photos]
    full = [int(vx.classify(img, [b.as_list()])[0][0].argmax()) for (img, _), b in zip(photos, boxes)]
    return vx, boxes, full


@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_detector_finds_the_face_in_photographs(name: str, photos) -> None:
    det = make_detector(name)
    found = [det.detect(img) for img, _ in photos]
    assert sum(bool(f) for f in found) >= len(photos) - 1
    for f, (img, _) in zip(found, photos):
        for b in f:
            assert 0 <= b.x1 < b.x2 <= img.shape[1] and 0 <= b.y1 < b.y2 <= img.shape[0]


def test_face_in_a_640x480_frame_is_found_where_it_is(mtcnn, photos) -> None:
    frame = np.full((480, 640, 3), 110, np.uint8)
    frame[100:450, 250:600] = photos[0][0]
    faces = find_faces(frame, mtcnn)
    assert faces and faces[0].source == "mtcnn"
    cx, cy = (faces[0].x1 + faces[0].x2) / 2, (faces[0].y1 + faces[0].y2) / 2
    assert 250 < cx < 600 and 100 < cy < 450


def test_empty_frame_has_no_face(mtcnn) -> None:
    assert find_faces(np.full((480, 640, 3), 110, np.uint8), mtcnn) == []


def test_camera_frames_skip_the_crop_rule(mtcnn) -> None:
    """A small flat frame has no detection: a face crop by the rule, no face when the input is a camera."""
    flat = np.full((64, 48, 3), 128, np.uint8)
    assert [f.source for f in find_faces(flat, mtcnn)] == ["crop"]
    assert find_faces(flat, mtcnn, accept_crops=False) == []


def test_crop_rule() -> None:
    assert looks_like_crop(40, 40) and looks_like_crop(128, 100) and looks_like_crop(CROP_MAX_SIDE, CROP_MAX_SIDE)
    assert not looks_like_crop(350, 350) and not looks_like_crop(480, 640) and not looks_like_crop(40, 120)


@pytest.mark.parametrize("side", [40, 64, 96, 128])
def test_tight_crops_are_faces(side: int, crops_and_full, photos) -> None:
    import cv2

    vx, boxes, full = crops_and_full
    agree = 0
    for (img, _), b, cls in zip(photos, boxes, full):
        crop = img[int(b.y1):int(b.y2), int(b.x1):int(b.x2)]
        crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        faces = vx(crop, track=False)
        assert len(faces) >= 1, f"no face in a {side}x{side} crop"
        assert faces[0].source in ("crop", "mtcnn")
        agree += int(faces[0].probs.argmax() == cls)
    if side >= 64:  # the expert says the same on the crop as on the photograph for most faces
        assert agree >= len(photos) // 2


def test_facebox_geometry() -> None:
    b = FaceBox(10, 20, 40, 80)
    assert b.width == 30 and b.height == 60 and b.area == 1800


def test_refine_carries_a_face_and_loses_an_empty_box(mtcnn, photos) -> None:
    """O-net alone on last frame's box: the face moved 10 px is still found there; a box on the background is not."""
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[60:410, 140:490] = photos[1][0]
    face = mtcnn.detect(frame)[0]
    moved = np.roll(frame, 10, axis=1)
    kept, gone = mtcnn.refine(moved, [face.as_list(), [10, 10, 90, 90]])
    assert gone is None and kept is not None and kept.source == "track" and kept.score > 0.7
    again = mtcnn.detect(moved)[0]
    assert abs((kept.x1 + kept.x2) / 2 - (again.x1 + again.x2) / 2) < 4 and abs(kept.width - again.width) < 8
    assert mtcnn.refine(moved, []) == []


def test_min_face_frac_skips_whole_pyramid_levels(photos) -> None:
    """The levels kept are the full pyramid's: a large face gets the very same box; a small one is not searched."""
    import cv2

    from synctva_ros.features.faces.detect import MtcnnDetector

    full, cam = MtcnnDetector(), MtcnnDetector(min_face_frac=0.1)
    assert full.skipped_levels(480, 640) == (0, 40.0)
    k, side = cam.skipped_levels(480, 640)
    assert k == 1 and 48 <= side < 57
    assert MtcnnDetector(min_face_frac=0.15).skipped_levels(480, 640)[0] == 2
    big = np.zeros((480, 640, 3), np.uint8)
    big[65:415, 145:495] = photos[0][0]
    np.testing.assert_allclose([b.as_list() for b in cam.detect(big)], [b.as_list() for b in full.detect(big)])
    small = np.zeros((480, 640, 3), np.uint8)
    small[200:260, 300:360] = cv2.resize(photos[0][0], (60, 60), interpolation=cv2.INTER_AREA)  # a ~60 px face box
    assert full.detect(small) and cam.detect(small)
    assert not MtcnnDetector(min_face_frac=0.2).detect(small)  # 112 px and up searched


def test_detector_settings_are_checked() -> None:
    from synctva_ros.features.faces.detect import MtcnnDetector

    with pytest.raises(ValueError, match="bad settings"):
        make_detector("haar", min_face_frac=0.1)
    with pytest.raises(ValueError, match="unknown face detector"):
        make_detector("retinaface")
    for bad in ({"min_face_frac": 1.0}, {"factor": 1.0}, {"min_face": 8}):
        with pytest.raises(ValueError, match="out of range"):
            MtcnnDetector(**bad)
