"""The demo's scoring helpers on real EmotionState messages (no node, no DDS)."""

from __future__ import annotations

import pytest

from synctva_ros.bags.reader import GroundTruth
from synctva_ros.msg import EmotionState
from synctva_ros.ros.demo import diagnostics_lines, ensure_demo_bag, modality_accuracies, result_rows, utterance_lines


def _state(uid: str, label: str, latency: float) -> EmotionState:
    return EmotionState(label=label, class_names=["neutral", "joy"], probabilities=[0.25, 0.75], confidence=0.75,
                        modalities=["text", "audio", "visual"], present=[True, True, False],
                        active=[True, False, False], transcript="Oh my god, what happened?", utterance_id=uid,
                        model="tiny", backend="torch", latency=latency)


def test_rows_pair_truth_with_states_and_mark_dropped_windows() -> None:
    truth = [GroundTruth("joy", 1, 100.0, 101.5, "d_0", "d"), GroundTruth("neutral", 0, 102.0, 104.25, "d_1", "d")]
    rows = result_rows(truth, {"d_0": _state("d_0", "joy", 0.0625), "other": _state("other", "joy", 0.1)})
    assert [r["utterance_id"] for r in rows] == ["d_0", "d_1"]
    got, dropped = rows
    assert got["pred"] == "joy" and got["truth"] == "joy" and got["confidence"] == 0.75
    assert got["probabilities"] == [0.25, 0.75] and got["latency_s"] == 0.0625
    assert got["modalities"] == ["text", "audio"] and got["active"] == ["text"]
    assert (got["model"], got["backend"], got["start"], got["end"]) == ("tiny", "torch", 100.0, 101.5)
    assert dropped["pred"] is None and dropped["latency_s"] is None and dropped["modalities"] == []
    assert dropped["transcript"] == "" and dropped["truth"] == "neutral"

    lines = utterance_lines(rows)
    assert lines[0] == ("   1.50s  joy      0.75  truth=joy      [text+audio; used text]  "
                        "'Oh my god, what happened?'")
    assert lines[1] == "   4.25s  DROPPED  truth=neutral  ''"
    assert utterance_lines([]) == []


def test_staged_faces_per_line_and_accuracy_per_modality() -> None:
    truth = [GroundTruth("joy", 1, 100.0, 101.5, "d_0", "d"), GroundTruth("neutral", 0, 102.0, 104.25, "d_1", "d"),
             GroundTruth("joy", 1, 105.0, 106.0, "d_2", "d")]
    a, b = _state("d_0", "joy", 0.05), _state("d_1", "joy", 0.05)
    a.text_probabilities, a.audio_probabilities, a.visual_probabilities = [0.9, 0.1], [0.4, 0.6], [0.2, 0.8]
    a.active, a.faces_seen, a.face_track_id = [True, True, True], 1, 3
    b.text_probabilities = [0.7, 0.3]
    faces = {"d_0": {"label": "joy", "image": "x.jpg"}, "d_1": {"label": "neutral", "image": "y.jpg"}}
    rows = result_rows(truth, {"d_0": a, "d_1": b}, faces)
    mp = rows[0]["modality_probabilities"]
    expected = {"text": [0.9, 0.1], "audio": [0.4, 0.6], "visual": [0.2, 0.8]}
    assert {m: pytest.approx(v) for m, v in mp.items()} == expected
    assert rows[1]["modality_probabilities"] == {"text": pytest.approx([0.7, 0.3])} and rows[2]["face_label"] is None
    assert (rows[0]["faces_seen"], rows[0]["face_track_id"], rows[0]["face_label"]) == (1, 3, "joy")
    assert "face=joy      [text+audio; used text+audio+visual]" in utterance_lines(rows)[0]
    acc = modality_accuracies(rows, ["neutral", "joy"])
    assert acc["text"] == {"correct": 1, "n": 2, "accuracy": 0.5}
    assert acc["audio"] == {"correct": 1, "n": 1, "accuracy": 1.0} and acc["visual"]["accuracy"] == 1.0
    assert acc["fused"] == {"correct": 1, "n": 2, "accuracy": 0.5}
    assert modality_accuracies([], ["joy"])["visual"] == {"correct": 0, "n": 0, "accuracy": None}


def test_diagnostics_lines_name_counts_and_fallbacks() -> None:
    diag = {"count.image_in": "2324", "count.audio_in": "3873", "count.transcript_in": "20",
            "windower.frames": "775", "streaming.audio_context": "19", "streaming.audio_batch:gap": "1"}
    received, sources = diagnostics_lines(diag)
    assert received == "node received 2324 camera frames, 3873 audio chunks, 20 transcripts"
    assert sources == ("node diagnostics: windower.frames 775, streaming.audio_context 19; "
                       "batch fallbacks {'streaming.audio_batch:gap': '1'}")
    received, sources = diagnostics_lines({"streaming.audio_context": "20"})
    assert received == "node received ? camera frames, ? audio chunks, ? transcripts"
    assert sources == "node diagnostics: streaming.audio_context 20; no batch fallback"


def test_a_given_bag_is_used_as_is(tmp_path) -> None:
    assert ensure_demo_bag(tmp_path / "mine") == tmp_path / "mine"
    assert not (tmp_path / "mine").exists()  # nothing made

