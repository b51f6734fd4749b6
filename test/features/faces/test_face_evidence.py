"""The visual evidence of a window (``synctva_ros.features.faces.evidence``) on real photographs of
../shared/data/faces: thinning, the speaker-face policies, absent faces and bad frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.evaluation.faces import read_rgb
from synctva_ros.features.faces.evidence import (FaceEvidenceExtractor, FaceObservation, aggregate, build_face_evidence,
                                                 check_frame, choose_track, thin_stamps)
from synctva_ros.features.faces.experts import MELD_ORDER

HAPPY = "images/Ai_Sugiyama_0001.jpg"  # labelled happiness; the expert says joy
SAD = "images/Alain_Cervantes_0001.jpg"  # labelled sadness; the expert says sadness


def in_frame(img: np.ndarray, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """``img`` centred in a black ``(width, height)`` frame."""
    w, h = size
    out = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
    out[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    return out


def two_faces(faces_dir: Path) -> np.ndarray:
    """800x400: the happy photograph large at the left edge, the sad one small (180 px) near the centre."""
    f = np.zeros((400, 800, 3), np.uint8)
    f[25:375, 0:350] = read_rgb(faces_dir / HAPPY)
    f[110:290, 390:570] = cv2.resize(read_rgb(faces_dir / SAD), (180, 180), interpolation=cv2.INTER_AREA)
    return f


def window_of(frames: list[np.ndarray], fps: float = 30.0) -> UtteranceWindow:
    tf = [TimedFrame(i / fps, img) for i, img in enumerate(frames)]
    return UtteranceWindow(start=0.0, end=len(frames) / fps, transcript="hi", frames=tf)


@pytest.fixture(scope="module")
def extractor() -> FaceEvidenceExtractor:
    ext = build_face_evidence(True, 5.0, "largest")
    if ext is None:
        pytest.skip("face weights not installed (make setup)")
    return ext


def test_thinning_keeps_a_grid_without_drift() -> None:
    stamps = np.arange(0, 2.0, 1 / 30)
    kept = thin_stamps(stamps, 5.0)
    assert kept[0] == 0 and len(kept) == 10
    assert np.allclose(np.diff(stamps[kept]), 0.2, atol=1 / 30 + 1e-9)
    assert thin_stamps([], 5.0) == [] and thin_stamps([0.0, 0.01, 0.5], 1.0) == [0]
    with pytest.raises(ValueError):
        thin_stamps([0.0], 0.0)


def test_a_happy_photograph_repeated_as_frames_gives_joy(extractor, faces_dir) -> None:
    frame = in_frame(read_rgb(faces_dir / HAPPY))
    ev = extractor(window_of([np.roll(frame, i % 3 - 1, axis=1) for i in range(30)]))  # 1 s at 30 fps
    assert ev.probs is not None and ev.probs.shape == (7,) and ev.probs.sum() == pytest.approx(1.0)
    assert MELD_ORDER[int(np.argmax(ev.probs))] == "joy"
    assert ev.frames == 5 and ev.frames_used == 5 and ev.faces_seen == 1 and ev.face_track_id >= 1
    assert ev.bad_frames == 0


def test_no_face_means_absent_evidence(extractor) -> None:
    ev = extractor(window_of([np.zeros((480, 640, 3), np.uint8)] * 10))
    assert ev.probs is None and ev.faces_seen == 0 and ev.face_track_id == -1 and ev.frames == 2
    assert extractor(window_of([])).probs is None


def test_policies_largest_and_central_choose_different_faces(extractor, faces_dir) -> None:
    frame = two_faces(faces_dir)
    win = window_of([frame] * 6)
    largest = FaceEvidenceExtractor(extractor.expert, 5.0, "largest")(win)
    central = FaceEvidenceExtractor(extractor.expert, 5.0, "central")(win)
    assert largest.faces_seen == central.faces_seen == 2
    assert largest.face_track_id != central.face_track_id
    assert MELD_ORDER[int(np.argmax(largest.probs))] == "joy"
    assert MELD_ORDER[int(np.argmax(central.probs))] == "sadness"


def test_bad_frames_are_skipped_and_counted(extractor, faces_dir) -> None:
    good = in_frame(read_rgb(faces_dir / HAPPY))
    frames = [np.zeros((0, 0, 3), np.uint8), good, good.astype(np.float32), good[..., 0], good]
    win = UtteranceWindow(start=0.0, end=1.0, frames=[TimedFrame(i * 0.25, f) for i, f in enumerate(frames)])
    ev = extractor(win)
    assert ev.bad_frames == 3 and ev.frames == 2 and MELD_ORDER[int(np.argmax(ev.probs))] == "joy"
    for bad in (np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), "x"):
        with pytest.raises(ValueError, match="bad camera frame"):
            check_frame(bad)


def test_aggregate_is_the_renormalised_mean_log_probability_of_the_chosen_track() -> None:
    rng = np.random.default_rng(0)
    lp = np.log(rng.dirichlet(np.ones(7), size=3))
    obs = [FaceObservation(0.0, 1, (0, 0, 100, 100), (480, 640), lp[0]),
           FaceObservation(0.2, 1, (0, 0, 100, 100), (480, 640), lp[1]),
           FaceObservation(0.2, 2, (300, 220, 340, 260), (480, 640), lp[2])]
    ev = aggregate(obs, "largest", frames=2)
    m = lp[:2].mean(0)
    np.testing.assert_allclose(ev.probs, np.exp(m) / np.exp(m).sum())
    assert (ev.faces_seen, ev.face_track_id, ev.frames_used, ev.per_track) == (2, 1, 2, {1: 2, 2: 1})
    assert choose_track(obs, "central") == 2 and choose_track([], "largest") == -1
    with pytest.raises(ValueError):
        choose_track(obs, "loudest")


def test_cost_settings_default_to_the_configuration_and_show_in_the_identity(extractor) -> None:
    from synctva_ros.config import FeaturesConfig

    cfg = FeaturesConfig()
    ident = extractor.identity()
    assert (ident["detect_every"], ident["min_face_frac"], ident["runtime"]) == \
        (cfg.face_detect_every, cfg.face_min_size, cfg.face_runtime)
    plain = build_face_evidence(True, 5.0, "largest", detect_every=1, min_face_frac=0.0, runtime="torch")
    assert (plain.identity()["detect_every"], plain.identity()["min_face_frac"], plain.identity()["runtime"]) == \
        (1, 0.0, "torch")
    with pytest.raises(ValueError):
        build_face_evidence(True, 5.0, "largest", detect_every=0)


def test_carrying_faces_between_detections_gives_the_window_the_same_evidence(extractor, faces_dir) -> None:
    """A face drifting across 2 s of 30 fps frames: the default schedule detects 4 of the 10 processed frames
    (slots of 0.6 s), carries the other 6, and the window says what detecting every frame says."""
    frame = in_frame(read_rgb(faces_dir / HAPPY))
    frames = [np.roll(frame, i // 2, axis=1) for i in range(60)]
    every = build_face_evidence(True, 5.0, "largest", detect_every=1)
    extractor.expert.reset()
    counts = dict(extractor.expert.schedule.counts)
    ev, ref = extractor(window_of(frames)), every(window_of(frames))
    done = {k: extractor.expert.schedule.counts[k] - counts.get(k, 0) for k in ("detected", "carried")}
    assert done == {"detected": 4, "carried": 6}
    assert ev.frames == ev.frames_used == 10 and ev.faces_seen == 1
    assert np.argmax(ev.probs) == np.argmax(ref.probs) and np.abs(ev.probs - ref.probs).max() < 0.05
