"""The detection schedule (``synctva_ros.features.faces.schedule``) on real photographs of ../shared/data/faces
moving in 640x480 frames: full detection on every Nth frame, tracked faces carried by O-net in between with
their ids, re-detection when a face is lost, when time goes back or jumps, and lost faces dropped."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from synctva_ros.features.faces.detect import make_detector
from synctva_ros.features.faces.schedule import MAX_GAP_PERIODS, ScheduledFaces
from synctva_ros.features.faces.track import IouTracker, iou

FPS = 5.0


def frame_with(photo: np.ndarray, x0: int, y0: int, side: int = 300) -> np.ndarray:
    """A black 640x480 frame with the photograph resized to ``side`` pixels at (x0, y0)."""
    out = np.zeros((480, 640, 3), np.uint8)
    out[y0:y0 + side, x0:x0 + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    return out


@pytest.fixture(scope="module")
def mtcnn():
    return make_detector("mtcnn", min_face_frac=0.1)


@pytest.fixture(scope="module")
def moving(photos) -> list[np.ndarray]:
    """Nine frames: the first photograph drifting right and down by 8 px, then 6 px, per processed frame."""
    return [frame_with(photos[0][0], 100 + 8 * i, 60 + 6 * i) for i in range(9)]


def test_detects_every_nth_frame_and_carries_the_ids_in_between(mtcnn, moving) -> None:
    faces = ScheduledFaces(mtcnn, IouTracker(), every=3, fps=FPS)
    full = ScheduledFaces(mtcnn, IouTracker(), every=1, fps=FPS)
    sources, ids = [], []
    for i, img in enumerate(moving):
        found, tids = faces(img, i / FPS)
        detected, _ = full(img, i / FPS)
        assert len(found) == 1 and len(detected) == 1
        sources.append(found[0].source)
        ids += tids
        # a carried face is where the full detector puts it
        assert iou(found[0].as_list(), detected[0].as_list()) > 0.8
    assert sources == ["mtcnn", "track", "track"] * 3
    assert set(ids) == {1}
    assert faces.counts == {"detected": 3, "carried": 6} and full.counts == {"detected": 9}


def test_a_lost_face_is_re_detected_at_once_and_dropped_later(mtcnn, moving) -> None:
    tracker = IouTracker(max_missed=2)
    faces = ScheduledFaces(mtcnn, tracker, every=3, fps=FPS)
    assert faces(moving[0], 0.0)[1] == [1]
    assert faces(moving[1], 0.2)[0][0].source == "track"
    empty = np.zeros_like(moving[0])
    found, tids = faces(empty, 0.4)  # the face left between two detections
    assert found == [] and tids == []
    assert faces.counts["lost"] == 1 and faces.counts["detected"] == 2
    assert [t.track_id for t in tracker.tracks] == [1] and tracker.tracks[0].missed == 1
    for k in range(2):  # nothing live to carry: the full detector runs while the track waits
        assert faces(empty, 0.6 + 0.2 * k) == ([], [])
    assert tracker.tracks == [] and faces.counts["detected"] == 4
    assert faces(moving[0], 1.0)[1] == [2]  # the face comes back: a new id


def test_a_face_back_within_max_missed_keeps_its_id(mtcnn, moving) -> None:
    faces = ScheduledFaces(mtcnn, IouTracker(max_missed=5), every=3, fps=FPS)
    assert faces(moving[0], 0.0)[1] == [1]
    assert faces(np.zeros_like(moving[0]), 0.2) == ([], [])
    found, tids = faces(moving[0], 0.4)
    assert tids == [1] and found[0].source == "mtcnn"  # missed faces are not carried: detected again


def test_time_going_back_or_jumping_forces_a_detection(mtcnn, moving) -> None:
    faces = ScheduledFaces(mtcnn, IouTracker(), every=10, fps=FPS)
    faces(moving[0], 5.0)
    assert faces(moving[1], 5.2)[0][0].source == "track"
    assert faces(moving[2], 4.0)[0][0].source == "mtcnn"  # earlier stamp (a restarted bag)
    assert faces(moving[3], 4.2)[0][0].source == "track"
    gap = MAX_GAP_PERIODS / FPS + 0.1
    assert faces(moving[4], 4.2 + gap)[0][0].source == "mtcnn"  # frames missing in between
    assert faces(moving[4], 4.2 + gap)[0][0].source == "mtcnn"  # the same stamp again


def test_slots_are_absolute_time_so_a_rerun_of_the_same_frames_agrees(mtcnn, moving) -> None:
    """The streaming cache and the batch extractor re-running a window's frames pick the same frames."""
    a = ScheduledFaces(mtcnn, IouTracker(), every=3, fps=FPS)
    stamps = [10.0 + 0.2 * i for i in range(len(moving))]
    first = [a(img, t)[0] for img, t in zip(moving, stamps)]
    again = [a(img, t)[0] for img, t in zip(moving, stamps)]  # starts earlier than the last frame: detected
    for f, g in zip(first, again):
        assert f[0].source == g[0].source
        np.testing.assert_allclose(f[0].as_list(), g[0].as_list(), atol=1e-4)


def test_a_new_face_waits_for_the_next_slot(mtcnn, photos) -> None:
    one = frame_with(photos[0][0], 20, 90, 250)
    two = one.copy()
    two[120:320, 400:600] = cv2.resize(photos[2][0], (200, 200), interpolation=cv2.INTER_AREA)
    faces = ScheduledFaces(mtcnn, IouTracker(), every=3, fps=FPS)
    assert faces(one, 0.0)[1] == [1]
    assert faces(two, 0.2)[1] == [1] and faces(two, 0.4)[1] == [1]  # carried: only the tracked face
    found, tids = faces(two, 0.6)  # next slot: full detection finds the newcomer
    assert sorted(tids) == [1, 2] and {f.source for f in found} == {"mtcnn"}


def test_without_stamps_frames_are_evenly_spaced(mtcnn, moving) -> None:
    faces = ScheduledFaces(mtcnn, IouTracker(), every=2, fps=FPS)
    assert [faces(img)[0][0].source for img in moving[:4]] == ["mtcnn", "track", "mtcnn", "track"]


def test_every_one_or_a_detector_without_refine_always_detects(moving) -> None:
    haar = make_detector("haar")
    faces = ScheduledFaces(haar, IouTracker(), every=3, fps=FPS)
    for i, img in enumerate(moving[:4]):
        faces(img, i / FPS)
    assert faces.counts == {"detected": 4}


def test_bad_settings_and_frames(mtcnn) -> None:
    with pytest.raises(ValueError):
        ScheduledFaces(mtcnn, IouTracker(), every=0)
    with pytest.raises(ValueError):
        ScheduledFaces(mtcnn, IouTracker(), every=2, fps=0.0)
    with pytest.raises(ValueError):
        ScheduledFaces(mtcnn, IouTracker(), every=2)(np.zeros((10, 10), np.uint8), 0.0)
