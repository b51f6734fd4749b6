"""The demo's scoring helpers on real EmotionState messages (no node, no DDS)."""

from __future__ import annotations

from synctva_ros.bags.reader import GroundTruth
from synctva_ros.msg import EmotionState
from synctva_ros.ros.demo import diagnostics_lines, ensure_demo_bag, result_rows, utterance_lines


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

