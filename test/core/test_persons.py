"""Who is speaking (synctva_ros.core.persons): the REP-155 voice -> person -> face policy, ROS-free."""

from __future__ import annotations

import re
import threading

import pytest

from synctva_ros.core.persons import (MAX_PERSONS, PersonRegistry, emotion_ids, person_from_topic, person_topic,
                                      track_face_id)
from synctva_ros.core.window import UtteranceWindow

#: A ROS 2 name token (rcl's rules): letters, digits, underscores, not starting with a digit.
TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _window(voice: str = "") -> UtteranceWindow:
    return UtteranceWindow(start=1.0, end=2.0, transcript="hello", speaker_id=voice)


def test_voice_maps_to_the_person_that_claims_it_and_its_face():
    reg = PersonRegistry()
    reg.set_voice("anna", "v1")
    reg.set_face("anna", "f1")
    reg.set_voice("bob", "v2")
    assert reg.person_of_voice("v1") == "anna" and reg.person_of_voice("v2") == "bob"
    assert reg.person_of_voice("v3") == "" and reg.person_of_voice("") == ""
    assert reg.face_of_person("anna") == "f1" and reg.face_of_person("bob") == "" and reg.face_of_person("x") == ""
    win = reg.attribute(_window("v1"))
    assert (win.person_id, win.person_face_id) == ("anna", "f1")
    win = reg.attribute(_window("v2"))
    assert (win.person_id, win.person_face_id) == ("bob", "")
    win = reg.attribute(_window(""))  # whisper / String / VAD windows: no voice, so no person
    assert (win.person_id, win.person_face_id) == ("", "")


def test_an_empty_voice_id_ends_the_association_and_a_new_one_replaces_it():
    reg = PersonRegistry()
    reg.set_voice("anna", "v1")
    reg.set_voice("anna", "")  # REP-155: the person has no voice now
    assert reg.person_of_voice("v1") == ""
    reg.set_voice("anna", "v7")
    assert reg.person_of_voice("v7") == "anna" and reg.person_of_voice("v1") == ""


def test_several_claims_tracked_person_first_then_the_most_recent():
    reg = PersonRegistry()
    reg.set_voice("old", "v1")
    reg.set_voice("new", "v1")
    assert reg.person_of_voice("v1") == "new"  # neither tracked: the latest association
    reg.set_tracked(["old", "someone"])
    assert reg.tracked == frozenset({"old", "someone"})
    assert reg.person_of_voice("v1") == "old"  # tracked wins over more recent
    reg.set_tracked(["old", "new"])
    assert reg.person_of_voice("v1") == "new"  # both tracked: the latest again
    reg.set_tracked([])
    assert reg.person_of_voice("v1") == "new"  # untracked persons still count when nobody tracked claims it


def test_bounded_least_recently_updated_person_is_forgotten():
    reg = PersonRegistry(max_persons=3)
    for i in range(4):
        reg.set_voice(f"p{i}", f"v{i}")
    assert reg.person_of_voice("v0") == "" and [reg.person_of_voice(f"v{i}") for i in (1, 2, 3)] == ["p1", "p2", "p3"]
    reg.set_face("p1", "f")  # an update keeps p1; p2 is now the oldest
    reg.set_voice("p9", "v9")
    assert reg.person_of_voice("v2") == "" and reg.person_of_voice("v1") == "p1"
    with pytest.raises(ValueError):
        PersonRegistry(max_persons=0)
    assert MAX_PERSONS >= 16


def test_ids_are_stripped_and_cut_and_blank_person_ids_ignored():
    reg = PersonRegistry()
    reg.set_voice("  anna ", " v1\n")
    reg.set_voice("", "v2")
    reg.set_voice(None, "v3")
    assert reg.person_of_voice("v1") == "anna" and reg.person_of_voice("v2") == ""
    reg.set_voice("p", "x" * 1000)
    assert reg.person_of_voice("x" * 1000) == "p"  # both sides cut the same way


def test_emotion_ids_face_and_frame_policy():
    reg = PersonRegistry()
    assert reg.camera_frame == ""
    reg.set_camera_frame("head_camera_optical_frame")
    assert reg.camera_frame == "head_camera_optical_frame"  # the per-face expressions' header.frame_id
    reg.set_voice("anna", "v1")
    reg.set_face("anna", "f1")
    known = reg.attribute(_window("v1"))
    # the person's REP-155 face wins; the camera frame only when the expert used a face
    assert emotion_ids(known, 3, "base_link") == ("head_camera_optical_frame", "v1", "anna", "f1")
    assert emotion_ids(known, -1, "base_link") == ("base_link", "v1", "anna", "f1")
    unknown = reg.attribute(_window("v2"))  # nobody claims v2: the expert's face, person unknown
    assert emotion_ids(unknown, 3) == ("head_camera_optical_frame", "v2", "", "face_3")
    assert emotion_ids(unknown, -1) == ("", "v2", "", "")
    reg.set_face("anna", "")  # the person's face is not seen now: fall back to the expert's face
    assert emotion_ids(reg.attribute(_window("v1")), 5).face_id == "face_5"
    reg.set_camera_frame("")  # a camera without frame id: the parameter even with a face
    assert emotion_ids(reg.attribute(_window("v1")), 5, "base_link").frame_id == "base_link"


def test_track_face_ids_are_ros_name_tokens():
    assert track_face_id(-1) == "" and track_face_id(0) == "face_0"
    for i in (1, 7, 123456):
        fid = track_face_id(i)
        assert TOKEN.match(fid) and fid.endswith(str(i))
    assert person_topic("anna", "voice_id") == "/humans/persons/anna/voice_id"
    assert person_from_topic("/humans/persons/anna/face_id") == ("anna", "face_id")
    for other in ("/humans/persons/tracked", "/humans/persons/anna/alias", "/robot/humans/persons/a/voice_id",
                  "/humans/voices/anna/speech"):
        assert person_from_topic(other) is None


def test_clear_forgets_everything_and_concurrent_updates_are_safe():
    reg = PersonRegistry()

    def writer(k: int) -> None:
        for i in range(500):
            reg.set_voice(f"p{k}", f"v{k}_{i}")
            reg.set_tracked([f"p{k}"])
            reg.attribute(_window(f"v{k}_{i}"))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [reg.person_of_voice(f"v{k}_499") for k in range(4)] == [f"p{k}" for k in range(4)]
    reg.set_camera_frame("cam")
    reg.clear()
    assert reg.person_of_voice("v0_499") == "" and reg.tracked == frozenset()
    assert reg.attribute(_window("v0_499")).camera_frame_id == ""
