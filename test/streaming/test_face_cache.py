"""Face evidence computed while the utterance goes on (``synctva_ros.streaming.face_cache`` through the
``StreamingFeatureCache``), on a real photograph of ../shared/data/faces."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.config import WindowingConfig
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.evaluation.faces import read_rgb
from synctva_ros.features.faces.evidence import FaceEvidenceExtractor, build_face_evidence
from synctva_ros.features.faces.experts import MELD_ORDER
from synctva_ros.streaming import StreamingFeatureCache
from synctva_ros.windowing.windower import UtteranceWindower

FACES = Path(os.environ.get("SYNCTVA_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data")) / "faces"
HAPPY = "images/Ai_Sugiyama_0001.jpg"


@pytest.fixture(scope="module")
def faces() -> FaceEvidenceExtractor:
    if not (FACES / HAPPY).is_file():
        pytest.skip(f"no labelled faces at {FACES}")
    ext = build_face_evidence(True, 5.0, "largest")
    if ext is None:
        pytest.skip("face weights not installed (make setup)")
    return ext


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    img = read_rgb(FACES / HAPPY)
    out = np.zeros((480, 640, 3), np.uint8)
    out[65:65 + img.shape[0], 145:145 + img.shape[1]] = img
    return out


def frames_of(frame: np.ndarray, t0: float, t1: float, fps: float = 30.0) -> list[TimedFrame]:
    return [TimedFrame(round(t, 6), np.roll(frame, i % 3 - 1, axis=1))
            for i, t in enumerate(np.arange(t0, t1, 1 / fps))]


def test_frames_processed_as_they_arrive_serve_the_window(faces, frame) -> None:
    cache = StreamingFeatureCache({}, faces=faces)
    tf = frames_of(frame, 10.0, 12.0)
    for f in tf:
        cache.on_frame(f.stamp, f.image)
    assert len(cache.face) == 10  # 2 s at 5 Hz
    win = UtteranceWindow(start=10.0, end=12.0, transcript="hi", frames=tf)
    ev = cache.face_evidence_for(win)
    assert MELD_ORDER[int(np.argmax(ev.probs))] == "joy" and ev.faces_seen == 1 and ev.frames == 10
    assert cache.stats["face_hit"] + cache.stats["face_near"] == 10 and cache.stats["face_miss"] == 0
    batch = FaceEvidenceExtractor(faces.expert, faces.fps, faces.policy)(win)
    np.testing.assert_allclose(ev.probs, batch.probs, atol=1e-6)  # same frames, same network


def test_only_frames_not_yet_processed_run_at_close(faces, frame) -> None:
    cache = StreamingFeatureCache({}, faces=faces)
    tf = frames_of(frame, 20.0, 21.0)
    for f in tf[:15]:  # the second half of the window arrives only with the closed window
        cache.on_frame(f.stamp, f.image)
    ev = cache.face_evidence_for(UtteranceWindow(start=20.0, end=21.0, frames=tf))
    assert cache.stats["face_hit"] + cache.stats["face_near"] == 3 and cache.stats["face_miss"] == 2
    assert ev.frames == 5 and ev.probs is not None


def test_background_thread_bad_frames_and_reset(faces, frame) -> None:
    cache = StreamingFeatureCache({}, faces=faces)
    cache.start()
    try:
        cache.on_frame(30.0, np.zeros((0, 0, 3), np.uint8))  # bad: counted, never raised
        cache.on_frame(30.2, frame.astype(np.float32))
        cache.on_frame(30.4, frame)
        deadline = time.monotonic() + 60
        while len(cache.face) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        cache.stop()
    assert cache.stats["face_bad_frame"] == 2 and len(cache.face) == 1
    assert cache.describe()["face_frames"] == 1
    cache.reset()
    assert len(cache.face) == 0
    ev = cache.face_evidence_for(UtteranceWindow(start=40.0, end=41.0, frames=[]))
    assert ev.probs is None and cache.stats["face_absent"] == 1


def test_zero_stamp_frames_are_processed_on_the_face_fps_grid_of_their_arrival_time(faces, frame) -> None:
    """Issue 14 item 2: frames stamped 0 reach the face grid (face_fps 5) with their arrival stamps, after the
    windower's 10 Hz thinning, and the window's thinned frames are all served from the cache."""
    cache = StreamingFeatureCache({}, faces=faces)
    w = UtteranceWindower(WindowingConfig(vad_enabled=False), 16000, sink=cache)
    for i, f in enumerate(frames_of(frame, 0.0, 1.0)):  # 1 s of a 30 fps camera, arriving from 80 s on
        w.add_frame(0.0, f.image, now=80.0 + i / 30)
    assert w.count("frames") == 10 and w.count("zero_stamps") == 30 and len(cache.face) == 5
    w.add_transcript("hi", 80.0, 80.95, True, stamp=80.95)
    out = []
    for k in range(7):  # the node's 20 Hz poll timer (node clock): the camera stopped, so it is not waited for
        out += w.poll(81.0 + 0.05 * k, arrival=81.0 + 0.05 * k)
    (win,) = out
    ev = cache.face_evidence_for(win)
    assert ev.frames == 5 and cache.stats["face_miss"] == 0 and ev.probs is not None
