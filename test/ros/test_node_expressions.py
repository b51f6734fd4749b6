"""Per-face hri_msgs/Expression from the node over real DDS across processes (issue 11): two labelled photographs
in view (real face weights), one Expression stream per face on /humans/faces/face_<n>/expression at the configured
rate, ids in EmotionState.face_id's format, /humans/faces/tracked when asked for."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hri_msgs.msg", reason="hri_msgs missing: `make third-party-msgs` builds the stand-in")

from node_runs import run_node_with_client, tiny_node_args  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("expressions_client.py")
FACES = Path(os.environ.get("SYNCTVA_DATA", ROOT.parent / "shared" / "data")) / "faces"
HZ = 2.5  # below features.face_fps (5): the output's own rate, not the face stage's, sets the spacing


@pytest.fixture(scope="module")
def expressions_run(node_process, ros_env, tiny_checkpoint):
    if not (FACES / "labels.csv").is_file():
        pytest.skip(f"no labelled faces at {FACES}")
    from synctva_ros.features.faces.weights import FaceWeightsMissing
    from synctva_ros.features.faces.loaders import load_face_api_expression
    try:
        load_face_api_expression()
    except FaceWeightsMissing:
        pytest.skip("face weights not installed (make setup)")
    return run_node_with_client(node_process, ros_env,
                                tiny_node_args(tiny_checkpoint, "-p", f"output.expression_hz:={HZ}",
                                               "-p", "output.faces_tracked:=true"),
                                CLIENT, str(FACES), timeout=400)


def test_two_faces_in_view_give_two_expression_streams_at_the_configured_rate(expressions_run):
    out, log, alive, status = expressions_run
    assert out["matched"], log[-3000:]
    exprs = out["expressions"]
    assert len(exprs) == 2 and all(re.fullmatch(r"face_[1-9][0-9]*", i) for i in exprs), (sorted(exprs), log[-3000:])
    for face_id, msgs in exprs.items():
        stamps = np.array([m["stamp"] for m in msgs])
        assert len(msgs) >= 6, (face_id, len(msgs), log[-3000:])  # 4 s at 2.5 Hz: 10, less discovery time
        assert np.all(np.diff(stamps) > 0) and 200.0 <= stamps[0] and stamps[-1] < 204.0, stamps
        assert np.median(np.diff(stamps)) == pytest.approx(1 / HZ, abs=0.06), np.diff(stamps)
        for m in msgs:
            assert m["frame_id"] == "head_camera" and 0 < m["confidence"] <= 1, m
            assert -1 <= m["valence"] <= 1 and -1 <= m["arousal"] <= 1, m
    labels = {i: {m["expression"] for m in msgs} for i, msgs in exprs.items()}
    assert sorted("happy" in v for v in labels.values()) == [False, True], labels  # one happy face, one not
    # the window's EmotionState names the face its expert used (the larger, happy one), with the same id
    (state,) = out["states"]
    happy = next(i for i, v in labels.items() if "happy" in v)
    assert state["face_id"] == happy == f"face_{state['face_track_id']}", (state, labels)
    assert state["frame_id"] == "head_camera", state
    # /humans/faces/tracked lists both ids with every expression frame
    assert out["tracked"] and {tuple(sorted(t["ids"])) for t in out["tracked"][2:]} == {tuple(sorted(exprs))}
    assert alive and status == 0, log[-3000:]
    assert "expressions: hri_msgs/Expression of every tracked face" in log and f"at {HZ:g} Hz" in log, log[-3000:]
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]
