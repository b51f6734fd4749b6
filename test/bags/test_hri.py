"""ROS4HRI / audio_common bags (synctva_ros.bags.hri): written by make_bag, read back by the reader as the node
subscribes (voices and persons once listed, latched person ids), real rosbag2 files in the published types."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

from synctva_ros.bags.hri import LATCHED_QOS, hri_id, voice_speech_topic
from synctva_ros.bags.make_bag import (TOPIC_AUDIO, TOPIC_GROUND_TRUTH, TOPIC_PERSONS_TRACKED, TOPIC_VOICES_TRACKED,
                                       make_bag, read_meld_csv)
from synctva_ros.bags.reader import ground_truth_from_bag, read_bag, windows_from_bag
from synctva_ros.bags.types import get_synctva_typestore, third_party_msg_dir
from synctva_ros.config import TopicsConfig

ROOT = Path(__file__).resolve().parents[2]
MELD = ROOT / "data" / "demo" / "meld_dev_sample.csv"
N = 4
T0 = 1_704_067_200 * 10**9
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """The same utterances in this package's types and in the ROS4HRI / audio_common types (with persons)."""
    base = tmp_path_factory.mktemp("hri")
    ours = make_bag(MELD, base / "ours", max_utterances=N, size=(32, 24), fps=5)
    hri = make_bag(MELD, base / "hri", max_utterances=N, size=(32, 24), fps=5, storage="sqlite3",
                   audio_type="audio_stamped", speech_type="live_speech", persons=True)
    return base / "ours", ours, base / "hri", hri


def test_hri_ids_are_ros_name_tokens():
    assert hri_id("voice", "Mrs. Geller") == "voice_mrs_geller" and hri_id("person", "") == "person_unknown"
    assert voice_speech_topic("voice_joey") == "/humans/voices/voice_joey/speech"


def test_third_party_types_hash_as_rosidl_built_them():
    """The rosbags store's hri_msgs / audio_common_msgs types have the type hashes of the generated packages."""
    ts = get_synctva_typestore()
    for pkg, name in (("hri_msgs", "LiveSpeech"), ("hri_msgs", "IdsList"), ("audio_common_msgs", "AudioStamped")):
        f = Path(sys.prefix) / "share" / pkg / "msg" / f"{name}.json"
        if not f.exists():
            pytest.skip(f"{pkg} not built into this environment (make third-party-msgs)")
        ref = next(h["hash_string"] for h in json.loads(f.read_text())["type_hashes"]
                   if h["type_name"] == f"{pkg}/msg/{name}")
        assert ts.hash_rihs01(f"{pkg}/msg/{name}") == ref
    assert third_party_msg_dir("no_such_msgs") is None


@needs_espeak
def test_make_bag_writes_rep155_topics_and_the_same_audio(bags):
    ours, s_ours, hri, s_hri = bags
    speakers = [r.speaker for r in read_meld_csv(MELD, max_utterances=N)]
    assert s_hri["voices"] == {s: hri_id("voice", s) for s in speakers}
    assert s_hri["persons"] == {s: hri_id("person", s) for s in speakers}
    types = {m.topic: m.msgtype for m in read_bag(hri)}
    assert types[TOPIC_AUDIO] == "audio_common_msgs/msg/AudioStamped"
    assert types[TOPIC_VOICES_TRACKED] == types[TOPIC_PERSONS_TRACKED] == "hri_msgs/msg/IdsList"
    assert {types[voice_speech_topic(v)] for v in s_hri["voices"].values()} == {"hri_msgs/msg/LiveSpeech"}
    assert "/speech" not in types
    live = [m for m in read_bag(hri) if m.msgtype == "hri_msgs/msg/LiveSpeech"]
    finals = [m.msg.final for m in live if m.msg.final]
    assert finals == [r.text for r in read_meld_csv(MELD, max_utterances=N)]  # one final per utterance, in order
    assert len(live) == 2 * N and all(m.msg.incremental for m in live if not m.msg.final)
    # the microphone carries the same samples in both types
    a = np.concatenate([np.frombuffer(m.msg.data.tobytes(), "<i2") for m in read_bag(ours, [TOPIC_AUDIO])])
    b = np.concatenate([m.msg.audio.audio_data.int16_data for m in read_bag(hri, [TOPIC_AUDIO])])
    assert a.size == b.size and np.array_equal(a, b)
    info = next(read_bag(hri, [TOPIC_AUDIO])).msg.audio.info
    assert (info.format, info.channels, info.rate) == (8, 1, 16000)
    # person ids are latched (transient-local offered QoS in the metadata), nothing else is
    meta = yaml.safe_load((hri / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    durability = {t["topic_metadata"]["name"]: [q["durability"] for q in t["topic_metadata"]["offered_qos_profiles"]]
                  for t in meta["topics_with_message_count"]}
    assert {t for t, d in durability.items() if "transient_local" in d} == \
        {f"/humans/persons/{p}/voice_id" for p in s_hri["persons"].values()}
    truth = ground_truth_from_bag(hri)
    assert [(g.utterance_id) for g in truth] == s_hri["utterance_ids"]
    gt = [m.msg for m in read_bag(hri, [TOPIC_GROUND_TRUTH])]
    assert [(g.voice_id, g.person_id) for g in gt] == [(hri_id("voice", s), hri_id("person", s)) for s in speakers]
    assert [g.voice_id for g in (m.msg for m in read_bag(ours, [TOPIC_GROUND_TRUTH]))] == speakers
    with pytest.raises(ValueError, match="persons"):
        make_bag(MELD, hri.parent / "bad", max_utterances=1, persons=True)
    with pytest.raises(ValueError, match="audio_type"):
        make_bag(MELD, hri.parent / "bad", max_utterances=1, audio_type="wav")


@needs_espeak
def test_reader_windows_carry_voice_and_person(bags):
    ours, _, hri, s_hri = bags
    got = windows_from_bag(hri)
    ref = windows_from_bag(ours)
    assert len(got) == len(ref) == N
    speakers = [r.speaker for r in read_meld_csv(MELD, max_utterances=N)]
    assert [w.transcript for w, _ in got] == [w.transcript for w, _ in ref]  # incremental results make no window
    assert [(w.speaker_id, w.person_id) for w, _ in got] == [(hri_id("voice", s), hri_id("person", s))
                                                             for s in speakers]
    assert [w.speaker_id for w, _ in ref] == speakers and all(w.person_id == "" for w, _ in ref)
    assert [lab for _, lab in got] == [lab for _, lab in ref]  # matched by overlap: LiveSpeech has no ids
    assert all(w.utterance_id == "" and w.camera_frame_id == "camera" for w, _ in got)
    for (w, _), (r, _) in zip(got, ref):
        # the end is the final result's stamp (0.1 s after the speech); LiveSpeech has no start: the window starts
        # at the last voice-activity onset before it, inside the speech (after a pause it is the last segment's)
        assert w.end == pytest.approx(r.end + 0.1, abs=1e-5) and r.start - 0.1 < w.start < r.end


def _bag(path: Path) -> None:
    """A hand-made ROS4HRI bag: a person's voice id before the person is listed, speech before its voice is
    listed, an association that ends, a voice never listed, a whisper transcription on /speech."""
    ts = get_synctva_typestore()
    T = ts.types

    def hdr(ns: int, frame: str = "") -> object:
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                        frame_id=frame)

    def speech(ns: int, text: str) -> object:
        return T["hri_msgs/msg/LiveSpeech"](header=hdr(ns), incremental="", final=text, confidence=0.8,
                                            locale="en_GB")

    s = 10**9
    msgs = [  # (ns, topic, type, message)
        (T0, "/humans/persons/p_anna/voice_id", "std_msgs/msg/String", T["std_msgs/msg/String"](data="v_anna")),
        (T0, "/humans/persons/p_anna/face_id", "std_msgs/msg/String", T["std_msgs/msg/String"](data="f_anna")),
        (T0 + s // 2, "/humans/voices/v_anna/speech", "hri_msgs/msg/LiveSpeech", speech(T0 + s // 2, "too early")),
        (T0 + s, "/humans/voices/tracked", "hri_msgs/msg/IdsList",
         T["hri_msgs/msg/IdsList"](header=hdr(T0 + s), ids=["v_anna"])),
        (T0 + s, "/humans/persons/tracked", "hri_msgs/msg/IdsList",
         T["hri_msgs/msg/IdsList"](header=hdr(T0 + s), ids=["p_anna"])),
        (T0 + 4 * s, "/humans/voices/v_anna/speech", "hri_msgs/msg/LiveSpeech", speech(T0 + 4 * s, "hello")),
        (T0 + 5 * s, "/humans/persons/p_anna/voice_id", "std_msgs/msg/String", T["std_msgs/msg/String"](data="")),
        (T0 + 8 * s, "/humans/voices/v_anna/speech", "hri_msgs/msg/LiveSpeech", speech(T0 + 8 * s, "again")),
        (T0 + 9 * s, "/humans/voices/v_bob/speech", "hri_msgs/msg/LiveSpeech", speech(T0 + 9 * s, "unheard")),
        (T0 + 12 * s, "/speech", "whisper_msgs/msg/Transcription",
         T["whisper_msgs/msg/Transcription"](text="from whisper", audio_time=1.0, transcription_time=0.2)),
    ]
    msgs += [(T0 + k * s // 2, "/camera/image_raw", "sensor_msgs/msg/Image", T["sensor_msgs/msg/Image"](
        header=hdr(T0 + k * s // 2, "head_cam"), height=2, width=2, encoding="rgb8", is_bigendian=0, step=6,
        data=np.zeros(12, np.uint8))) for k in range(30)]
    msgs.sort(key=lambda m: m[0])
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {}
        for ns, topic, typ, msg in msgs:
            if topic not in conns:
                latched = LATCHED_QOS if topic.startswith("/humans/persons/p_") else ()
                conns[topic] = w.add_connection(topic, typ, typestore=ts, offered_qos_profiles=latched)
            w.write(conns[topic], ns, ts.serialize_cdr(msg, typ))


def test_reader_follows_the_nodes_subscriptions_on_a_hand_made_bag(tmp_path):
    _bag(tmp_path / "b")
    got = [w for w, _ in windows_from_bag(tmp_path / "b")]
    assert [w.transcript for w in got] == ["hello", "again", "from whisper"]
    hello, again, whisper = got
    # the voice id recorded before the person was listed counts once it is (a latched topic)
    assert (hello.speaker_id, hello.person_id, hello.person_face_id) == ("v_anna", "p_anna", "f_anna")
    assert (again.speaker_id, again.person_id, again.person_face_id) == ("v_anna", "", "")  # association ended
    assert (whisper.speaker_id, whisper.person_id) == ("", "")
    assert whisper.end == pytest.approx((T0 + 12 * 10**9) * 1e-9 - 0.2) and whisper.duration == pytest.approx(1.0)
    assert {w.camera_frame_id for w in got} == {"head_cam"} and hello.language == "en-GB"
    # persons off ('' topic): nobody is attributed; voices off: only topics.transcript is read
    off = [w for w, _ in windows_from_bag(tmp_path / "b", topics=TopicsConfig(persons_tracked=""))]
    assert [(w.transcript, w.person_id) for w in off] == [("hello", ""), ("again", ""), ("from whisper", "")]
    quiet = [w.transcript for w, _ in windows_from_bag(tmp_path / "b", topics=TopicsConfig(voices_tracked=""))]
    assert quiet == ["from whisper"]
