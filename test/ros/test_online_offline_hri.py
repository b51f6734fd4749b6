"""A bag in the ROS4HRI / audio_common types (``synctva make-bag --audio-type audio_stamped --speech-type
live_speech --persons``): the node (real DDS, the bag replayed with its latched person topics) and ``synctva
evaluate`` (no ROS) give the same windows, predictions, voices and persons, and the dialogue context is the
dialogue's turns tagged by person."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synctva_ros.bags.make_bag import TOPIC_GROUND_TRUTH, make_bag
from synctva_ros.bags.reader import iter_windows_from_bag, read_bag
from synctva_ros.config import load_config
from synctva_ros.evaluation.offline import evaluate

pytest.importorskip("hri_msgs.msg", reason="hri_msgs missing: `make third-party-msgs` builds the stand-in")
pytest.importorskip("audio_common_msgs.msg", reason="audio_common_msgs missing: `make third-party-msgs`")

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("bag_client.py")
N = 5
#: Big enough for the face expert to find the astronaut's face in the bag's camera.
SIZE = (320, 240)


@pytest.fixture(scope="module")
def hri_bag(tmp_path_factory, meld_sample_csv):
    bag = tmp_path_factory.mktemp("hri_bag") / "bag"
    make_bag(meld_sample_csv, bag, max_utterances=N, size=SIZE, fps=10, audio_type="audio_stamped",
             speech_type="live_speech", persons=True)
    return bag


@pytest.fixture(scope="module")
def cfg(tiny_checkpoint):
    return load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint), "features.streaming_wait_s": 30.0})


def _truth_ids(bag: Path) -> list[tuple[float, float, str, str]]:
    return [(m.msg.window_start.sec + m.msg.window_start.nanosec * 1e-9,
             m.msg.window_end.sec + m.msg.window_end.nanosec * 1e-9, m.msg.voice_id, m.msg.person_id)
            for m in read_bag(bag, [TOPIC_GROUND_TRUTH])]


def _overlapping(truth, start: float, end: float) -> tuple[str, str]:
    best = max(truth, key=lambda g: min(end, g[1]) - max(start, g[0]))
    return best[2], best[3]


def test_node_and_evaluate_agree_on_a_rep155_bag(hri_bag, cfg, tiny_checkpoint, node_process, ros_env):
    offline = evaluate(hri_bag, cfg, verbose=False)
    assert offline["predicted"] == N and offline["dropped_windows"] == 0  # LiveSpeech windows matched by overlap
    truth = _truth_ids(hri_bag)
    rows = [r for r in offline["rows"] if r["pred"] is not None]
    for r in rows:  # the voice from the speech topic, the person from its latched voice_id
        assert (r["voice_id"], r["person_id"]) == _overlapping(truth, r["start"], r["end"]), r
    # the text stage ran at each transcript with the person already set (the speaker tag): used at every close
    stats = offline["model"]["streaming"]["stats"]
    assert (stats["text_prefetched"], stats["text_prefetch_hit"], stats.get("text_prefetch_miss", 0)) == (N, N, 0)

    node = node_process(["-p", "use_sim_time:=true", "-p", f"runtime.checkpoint:={tiny_checkpoint}",
                         "-p", "topics.sensor_qos:=reliable", "-p", "features.streaming_wait_s:=30.0",
                         "-p", "topics.audio_msg_type:=audio_stamped", "-p", "topics.transcript_msg_type:=live_speech",
                         "-p", "output.frame_id:=base_link",
                         # a loaded CI machine: the node's executor may fall a second or more behind the replay;
                         # its reliable subscriptions then keep every chunk instead of overwriting the oldest
                         "-p", "topics.qos_depth:=2000"])
    try:
        res = subprocess.run([sys.executable, str(CLIENT), str(hri_bag), str(N), "2.0"], cwd=ROOT, env=ros_env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-4000:]
        online = json.loads(res.stdout)
    finally:
        status = node.stop()
    log = node.output()
    assert online["node_up"] and not online["replay"]["skipped_topics"], (online["replay"], log[-3000:])
    assert status == 0 and "Traceback" not in log, log[-3000:]
    states = online["states"]
    assert len(states) == N, (online, log[-3000:])
    diag = online["diagnostics"]
    assert int(diag["count.audio_in"]) == online["replay"]["published"]["/audio"], diag  # every chunk windowed
    by_end = {round(r["end"], 3): r for r in rows}
    for s in states:
        o = by_end[round(s["window_end"], 3)]
        assert s["window_start"] == pytest.approx(o["start"], abs=1e-6), (states, log[-6000:])
        assert (s["voice_id"], s["person_id"]) == (o["voice_id"], o["person_id"]), (s, o)
        assert s["label"] == o["pred"]
        assert s["probabilities"] == pytest.approx(o["probabilities"], abs=1e-5)  # float32 in the message
        # the bag has persons but no ROS4HRI face ids: the face is the expert's, and with it the camera's frame
        if s["face_track_id"] >= 0:
            assert (s["face_id"], s["frame_id"]) == (f"face_{s['face_track_id']}", "camera"), s
        else:
            assert (s["face_id"], s["frame_id"]) == ("", "base_link"), s
    assert any(s["face_track_id"] >= 0 for s in states), states  # the astronaut's face was used somewhere


def test_dialogue_context_is_the_dialogues_turns_tagged_by_person(hri_bag, cfg):
    """The pipeline keeps one history for the dialogue (all speakers, as the checkpoints were trained), each turn
    tagged with the person a ROS4HRI person manager associated with the voice."""
    from synctva_ros.pipeline import EmotionPipeline

    pipe = EmotionPipeline(cfg)
    try:
        windows = list(iter_windows_from_bag(hri_bag, cfg.windowing, cfg.features.audio_sample_rate, cfg.topics))
        for w in windows:
            pipe.predict(w)
        turns = pipe.dialogue.turns("")  # LiveSpeech has no dialogue id: one session
    finally:
        pipe.close()
    k = pipe.dialogue.max_turns
    assert k >= 1 and len(turns) == min(k, N)
    assert [(t.speaker, t.text) for t in turns] == [(w.person_id, w.transcript.strip()) for w in windows][-k:]
    assert {t.speaker for t in turns} <= {"person_rachel", "person_joey"} and len({t.speaker for t in turns}) == 2
