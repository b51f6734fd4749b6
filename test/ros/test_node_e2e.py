"""EmotionNode end to end over real DDS: real pipeline, real checkpoint, separate processes.

One node process (use_sim_time, reliable sensor QoS) and one client process
(``ros_client.py scenario``) that publishes /clock by hand, a valid utterance, then
each kind of bad input followed by another valid utterance. Checked here: the
EmotionState of every valid utterance, that each bad input moved its diagnostics
counter, and that the node survived all of it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synctva_ros.ros.conversions import MAX_TRANSCRIPT_CHARS

ROOT = Path(__file__).resolve().parents[2]

CASES = ["image_unknown_encoding", "image_wrong_step", "audio_empty", "audio_nan", "audio_bad_rate",
         "transcript_empty", "transcript_10mb", "stamps_out_of_order", "stamps_backwards", "image_zero_stamp"]
TEXT = "I am so happy to see you again, this is wonderful news!"
UTTERANCE_S = 2.0


@pytest.fixture(scope="module")
def scenario(node_process, run_client, tiny_checkpoint):
    """Run the node and the client scenario once; yield (client JSON, node log, node status)."""
    node = node_process(["-p", "use_sim_time:=true", "-p", f"runtime.checkpoint:={Path(tiny_checkpoint)}",
                         "-p", "topics.sensor_qos:=reliable", "-p", "runtime.diagnostics_hz:=5.0",
                         "-p", "runtime.threads:=1"])
    try:
        out = run_client("scenario", *CASES, "--timeout", "60", timeout=600)
        alive = node.alive()
    finally:
        status = node.stop()
    yield {r["case"]: r for r in out["records"]}, node.output(), alive, status


def test_valid_utterance_gives_an_emotion_state(scenario, tiny_checkpoint):
    from synctva_ros.checkpoint import read_manifest  # deferred: imports torch, only this test reads a manifest

    records, log, _, _ = scenario
    rec = records["baseline"]
    st = rec["state"]
    assert st is not None, log[-3000:]
    manifest = read_manifest(Path(tiny_checkpoint))
    assert st["class_names"] == list(manifest["class_names"])
    assert st["utterance_id"] == "u-baseline" and st["dialogue_id"] == "d0"
    assert st["transcript"] == TEXT
    assert st["window_end"] - st["window_start"] == pytest.approx(UTTERANCE_S, abs=1e-6)
    assert st["stamp"] == pytest.approx(st["window_end"], abs=1e-9)  # header stamp = window end
    probs = st["probabilities"]
    assert len(probs) == len(st["class_names"]) and math.isclose(sum(probs), 1.0, abs_tol=1e-5)
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert st["label"] == st["class_names"][st["label_index"]]
    assert st["label_index"] == max(range(len(probs)), key=probs.__getitem__)
    assert st["confidence"] == pytest.approx(max(probs), abs=1e-6)
    assert -1.0 <= st["valence"] <= 1.0 and -1.0 <= st["arousal"] <= 1.0
    assert st["modalities"] == ["text", "audio", "visual"]
    assert st["present"] == [True, True, True]  # transcript, audio and frames were all sent
    trained = [bool(manifest["active"][m]) for m in ("text", "audio", "visual")]
    assert st["active"] == [p and t for p, t in zip(st["present"], trained)]
    contrib = st["contributions"]
    assert all(c == 0.0 for c, a in zip(contrib, st["active"]) if not a)
    assert math.isclose(sum(contrib), 1.0, abs_tol=1e-4)
    assert st["backend"] == "onnxruntime" and st["model"] == manifest["name"]  # the demo profile's backend
    assert 0.0 <= st["latency"] < 60.0


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_counted_and_the_next_window_still_published(scenario, case):
    records, log, _, _ = scenario
    rec = records[case]
    assert rec["counted"] and rec["counter_after"] > rec["counter_before"], (rec["diag"], log[-3000:])
    st = rec["state"]
    assert st is not None, f"no EmotionState for the valid utterance after {case}:\n{log[-3000:]}"
    assert st["utterance_id"] == f"u-{case}" and st["transcript"] == TEXT
    assert math.isclose(sum(st["probabilities"]), 1.0, abs_tol=1e-5)


def test_bad_inputs_are_logged_as_warnings(scenario):
    """One WARN per kind at least (repeats of a kind within 5 s are throttled, still counted)."""
    _, log, _, _ = scenario
    warnings = [line for line in log.splitlines() if line.startswith("[WARN]")]
    for needle in ("unsupported image encoding", "[bad_image: 1 so far]", "empty chunk", "non-finite samples",
                   "final transcript is empty", "[transcript_truncated: 1 so far]",
                   "[windower.out_of_order: 1 so far]",
                   "[synctva_ros.windowing] sensor time of audio went back"):  # core warning via the bridge
        assert any(needle in w for w in warnings), needle


def test_streaming_cache_serves_the_window_audio(scenario):
    """The pipeline's streaming cache is the windower's sink in the node: window audio is served from
    its live openSMILE run (counters in /diagnostics), and no close had to give up waiting for it."""
    records, log, _, _ = scenario
    diag = records[CASES[-1]]["diag"]
    served = {k: int(v) for k, v in diag.items() if k.startswith("streaming.audio_")}
    assert served.get("streaming.audio_context", 0) >= 1, (served, log[-3000:])  # the default audio_mode
    assert int(diag.get("streaming.drain_timeout", "0")) == 0
    assert diag["streaming.queued_audio"] == "0"


def test_huge_transcript_is_truncated_not_fatal(scenario):
    records, _, _, _ = scenario
    # the 10 MB final transcript still closed its own window, published with the text cut
    lens = records["transcript_10mb"]["transcript_lens"]
    assert lens.get("bad-huge") == MAX_TRANSCRIPT_CHARS


def test_node_survives_and_stops_cleanly(scenario):
    records, log, alive, status = scenario
    assert alive, log[-3000:]
    assert status == 0, log[-3000:]
    assert int(records[CASES[-1]]["diag"]["count.published"]) >= len(CASES) + 1
    assert "Traceback" not in log, log[-3000:]


def test_pending_window_is_flushed_and_published_on_ctrl_c(node_process, ros_env, tiny_checkpoint):
    """Sim time stops before the window's end + late_s; Ctrl-C must still publish it."""
    node = node_process(["-p", "use_sim_time:=true", "-p", f"runtime.checkpoint:={Path(tiny_checkpoint)}",
                         "-p", "topics.sensor_qos:=reliable", "-p", "runtime.threads:=1"])
    client = subprocess.Popen([sys.executable, str(ROOT / "test" / "ros" / "ros_client.py"), "pending",
                               "--timeout", "60"], cwd=ROOT, env=ros_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert client.stderr.readline().strip() == "READY"
        time.sleep(1.0)
        assert node.alive()
        status = node.stop(timeout=60)
        out, err = client.communicate(timeout=90)
    finally:
        if client.poll() is None:
            client.kill()
    assert status == 0, node.output()[-3000:]
    result = json.loads(out)
    assert result["early"] == []  # nothing was published before the stop
    uids = [s["utterance_id"] for s in result["states"]]
    assert uids == ["u-pending"], (uids, node.output()[-3000:])
    st = result["states"][0]
    assert st["window_start"] == pytest.approx(100.0) and st["window_end"] == pytest.approx(100.0 + UTTERANCE_S)
