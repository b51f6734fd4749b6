"""Who is speaking, in the node over real DDS across processes (issue 11): EmotionState's voice_id, person_id,
face_id and header.frame_id from ROS4HRI LiveSpeech and the latched /humans/persons/<id>/voice_id, face_id; the
start-up lines when hri_msgs is missing (persons and the per-face expression output off)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("hri_msgs.msg", reason="hri_msgs missing: `make third-party-msgs` builds the stand-in")
pytest.importorskip("audio_common_msgs.msg", reason="audio_common_msgs missing: `make third-party-msgs`")

from node_runs import hidden_package, run_node_with_client, tiny_node_args  # noqa: E402

CLIENT = Path(__file__).with_name("persons_client.py")


@pytest.fixture(scope="module")
def persons_run(node_process, ros_env, tiny_checkpoint):
    return run_node_with_client(node_process, ros_env,
                                tiny_node_args(tiny_checkpoint, "-p", "topics.audio_msg_type:=audio_stamped",
                                               "-p", "topics.transcript_msg_type:=live_speech",
                                               "-p", "output.frame_id:=base_link"),
                                CLIENT)


def test_emotion_state_names_the_voice_the_person_and_the_persons_face(persons_run):
    out, log, alive, status = persons_run
    assert out["matched"] and out["latched_subscribed"], log[-3000:]
    assert len(out["states"]) == 2, (out, log[-3000:])
    anna, bob = out["states"]
    for s in (anna, bob):  # noise frames: no face used, so the frame is the parameter's
        assert s["face_track_id"] == -1 and s["frame_id"] == "base_link", s
    # v_anna is claimed by person p_anna (latched ids published before the node subscribed), whose face is f_anna
    assert (anna["voice_id"], anna["person_id"], anna["face_id"]) == ("v_anna", "p_anna", "f_anna"), anna
    # v_bob: nobody claims it and no face was used
    assert (bob["voice_id"], bob["person_id"], bob["face_id"]) == ("v_bob", "", ""), bob
    assert alive and status == 0, log[-3000:]
    assert "persons: tracked on '/humans/persons/tracked'" in log, log[-3000:]
    # the per-face expression output is on by default, without /humans/faces/tracked (a face detector's topic)
    assert "expressions: hri_msgs/Expression of every tracked face" in log and "at 5 Hz" in log, log[-3000:]
    assert "/humans/faces/tracked: not published (output.faces_tracked)" in log, log[-3000:]
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]


def test_without_hri_msgs_the_node_says_persons_are_off(start_node, ros_env, tmp_path, tiny_checkpoint):
    """hri_msgs hidden: the start-up line names what is off, and the node still configures with its own types."""
    with hidden_package(ros_env, tmp_path, "hri_msgs"):
        node = start_node("-p", f"runtime.checkpoint:={tiny_checkpoint}", "-p", "runtime.threads:=1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and node.alive() and "expressions: off" not in node.output():
        time.sleep(0.5)
    log = node.output()
    assert "hri_msgs is not installed" in log and "the persons of topics.persons_tracked" in log, log[-3000:]
    assert "and the per-face hri_msgs/Expression output on /humans/faces/<id>/expression" in log, log[-3000:]
    assert "persons: off (no hri_msgs): EmotionState.person_id stays empty" in log, log[-3000:]
    assert "expressions: off (no hri_msgs): no hri_msgs/Expression on /humans/faces/<id>/expression" in log, log[-3000:]
    assert node.alive(), log[-3000:]
