"""Per-face expressions for ROS4HRI (``synctva_ros.streaming.face_expressions``): the class -> ``hri_msgs/Expression``
constant mapping checked against the message definition, each field, the output rate, and every tracked face's
expression from the streaming face stage on real photographs (two faces in one frame, real weights)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.core.persons import track_face_id
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.evaluation.faces import read_rgb
from synctva_ros.evaluation.two_faces import compose, owner, speaker_listener
from synctva_ros.features.faces.evidence import FaceObservation, build_face_evidence
from synctva_ros.features.faces.experts import MELD_ORDER
from synctva_ros.model.affect import expected_affect
from synctva_ros.streaming import StreamingFeatureCache
from synctva_ros.streaming.face_expressions import (EXPRESSION_OF_CLASS, FORGET_S, ExpressionFeed, expression_fields,
                                                    frame_expressions)

ROOT = Path(__file__).resolve().parents[2]
EXPRESSION_MSG = ROOT / "third_party_msgs" / "hri_msgs" / "msg" / "Expression.msg"
FACES = Path(os.environ.get("SYNCTVA_DATA", ROOT.parent / "shared" / "data")) / "faces"
HAPPY, NEUTRAL = "images/Ai_Sugiyama_0001.jpg", "images/Al_Gore_0001.jpg"  # labelled happiness, neutral


def _definition() -> tuple[dict[str, str], dict[str, str]]:
    """(constants {NAME: value}, fields {name: type}) of the hri_msgs/Expression definition."""
    consts, fields = {}, {}
    for line in EXPRESSION_MSG.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if m := re.fullmatch(r'string (\w+)="(\w+)"', line):
            consts[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"([\w/]+) (\w+)", line):
            fields[m.group(2)] = m.group(1)
    return consts, fields


def obs(track: int, probs: list[float], stamp: float = 1.0) -> FaceObservation:
    return FaceObservation(stamp, track, (10.0, 20.0, 110.0, 120.0), (480, 640), np.log(np.asarray(probs, float)))


def test_each_class_maps_to_the_expression_constant_of_that_name() -> None:
    consts, fields = _definition()
    want = {"neutral": "NEUTRAL", "joy": "HAPPY", "surprise": "SURPRISED", "anger": "ANGRY", "sadness": "SAD",
            "disgust": "DISGUSTED", "fear": "SCARED"}
    assert set(EXPRESSION_OF_CLASS) == set(MELD_ORDER)
    assert {c: consts[want[c]] for c in MELD_ORDER} == EXPRESSION_OF_CLASS
    assert len(consts) == 25  # the definition read is the full 2.x list (Chambers 2020)
    assert fields == {"header": "std_msgs/Header", "expression": "string", "valence": "float32",
                      "arousal": "float32", "confidence": "float32"}


def test_fields_of_one_face() -> None:
    p = [0.05, 0.7, 0.1, 0.05, 0.04, 0.03, 0.03]  # MELD order: joy most probable
    f = expression_fields(obs(3, p, stamp=12.5))
    assert (f.face_id, f.track_id, f.stamp, f.expression) == ("face_3", 3, 12.5, "happy")
    assert f.face_id == track_face_id(3) and f.box == (10.0, 20.0, 110.0, 120.0)
    assert f.confidence == pytest.approx(0.7)
    assert (f.valence, f.arousal) == pytest.approx(expected_affect(p, MELD_ORDER))
    hot = expression_fields(obs(3, p), temperature=3.32)  # calibrated: same class, less confident, flatter V/A
    assert hot.expression == "happy" and 1 / 7 < hot.confidence < 0.7 and hot.probs.sum() == pytest.approx(1)
    assert abs(hot.valence) < abs(f.valence) + 1e-9 and -1 <= hot.arousal <= 1
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="temperature"):
            expression_fields(obs(3, p), temperature=bad)
    with pytest.raises(ValueError, match="log_probs"):
        expression_fields(FaceObservation(1.0, 1, (0, 0, 1, 1), (2, 2), np.full(7, np.nan)))


def test_one_record_per_track_in_track_order() -> None:
    uniform = [1 / 7] * 7
    recs = frame_expressions([obs(5, uniform), obs(2, uniform)])
    assert [r.face_id for r in recs] == ["face_2", "face_5"]
    assert frame_expressions([]) == []


def test_rate_follows_sensor_time() -> None:
    u = [1 / 7] * 7
    stamps = [10.0 + 0.2 * k for k in range(10)]  # the face stage at 5 Hz
    assert sum(ExpressionFeed(5.0).offer(s, [obs(1, u, s)]) is not None for s in stamps) == 10
    half = ExpressionFeed(2.5)
    assert [s for s in stamps if half.offer(s, [obs(1, u, s)]) is not None] == stamps[::2]
    feed = ExpressionFeed(5.0)
    assert feed.offer(10.0, [obs(1, u)]).face_ids == ["face_1"]
    assert feed.offer(10.0, [obs(1, u)]) is None  # the same frame again is not due
    gone = feed.offer(10.2 + FORGET_S, [obs(2, u)])  # face 1 unseen for FORGET_S: gone once
    assert gone.face_ids == ["face_2"] and gone.gone == ["face_1"]
    assert feed.offer(10.4 + FORGET_S, []).gone == []
    back = feed.offer(1.0, [obs(3, u)])  # a restarted bag: every face so far is gone, the grid restarts
    assert back is not None and back.gone == ["face_2"] and back.face_ids == ["face_3"]
    with pytest.raises(ValueError):
        ExpressionFeed(0.0)


@pytest.fixture(scope="module")
def two_face_frame() -> tuple[np.ndarray, tuple]:
    if not (FACES / HAPPY).is_file():
        pytest.skip(f"no labelled faces at {FACES}")
    placements = speaker_listener("speaker larger", "symmetric")  # the happy face larger, on the left
    return compose([read_rgb(FACES / HAPPY), read_rgb(FACES / NEUTRAL)], placements), placements


def test_every_tracked_face_of_every_processed_frame(two_face_frame) -> None:
    frame, placements = two_face_frame
    ext = build_face_evidence(True, 5.0, "largest")
    if ext is None:
        pytest.skip("face weights not installed (make setup)")
    cache = StreamingFeatureCache({}, faces=ext)
    feed, frames = ExpressionFeed(5.0, temperature=3.32), []
    cache.face.on_observed = lambda stamp, o: frames.append(feed.offer(stamp, o))
    for i in range(60):  # 2 s of a 30 fps camera: 10 frames processed at 5 Hz
        cache.on_frame(20.0 + i / 30, np.roll(frame, i % 3 - 1, axis=1))
    assert len(frames) == 10 and all(f is not None for f in frames)
    ids = {tuple(f.face_ids) for f in frames}
    assert len(ids) == 1 and len(next(iter(ids))) == 2  # the same two tracks in every frame
    by_owner = {owner(r.box, placements): r for r in frames[-1].faces}
    assert set(by_owner) == {0, 1}
    assert all(re.fullmatch(r"face_[1-9][0-9]*", r.face_id) for r in by_owner.values())
    assert by_owner[0].expression == "happy" and by_owner[0].valence > 0.5  # the happy photograph
    assert by_owner[1].expression != "happy"
    assert all(0 < r.confidence <= 1 and -1 <= r.valence <= 1 and -1 <= r.arousal <= 1 for r in frames[-1].faces)
    # the window evidence uses the same observations: the largest face is the happy one
    win = UtteranceWindow(start=20.0, end=22.0, frames=[TimedFrame(20.0 + i / 30, frame) for i in range(60)])
    ev = cache.face_evidence_for(win)
    assert track_face_id(ev.face_track_id) == by_owner[0].face_id and cache.stats["face_miss"] == 0
