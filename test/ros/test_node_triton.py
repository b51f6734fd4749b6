"""Two emotion nodes share one Triton server (backend triton), over real DDS, all separate processes.

``synctva serve`` writes the Triton model repository of the shipped demo checkpoint and serves it (PyTriton's
tritonserver on free localhost ports); two nodes (their own output topics) start with ``runtime.backend:=triton``
and the same inputs; the client (triton_node_client.py) sends an utterance, SIGKILLs the tritonserver binary,
and sends another. Checked: both nodes' first EmotionState came from the server (``backend: triton``) with the
same probabilities; after the kill both still publish the next window (none lost), answered by the local
fallback (``backend: onnxruntime``), counted in /diagnostics and warned about in the log; the serving process
exits 1 once its server died.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from synctva_ros.backends.triton_process import TritonServerProcess

pytest.importorskip("tritonclient.grpc", reason="tritonclient not installed (requirements-ml.txt)")
pytest.importorskip("pytriton", reason="nvidia-pytriton not installed (Makefile .stamp-triton)")
ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("triton_node_client.py")
NAMES = ("a", "b")


@pytest.fixture(scope="module")
def fleet_run(node_process, ros_env, tmp_path_factory):
    """Run the server, the two nodes and the client once; yield (client JSON, node logs, server)."""
    repo = tmp_path_factory.mktemp("triton_node") / "repo"
    server = TritonServerProcess(command=[sys.executable, "-m", "synctva_ros.cli", "serve", "--repository", str(repo),
                                          "--host", "127.0.0.1", "--profile", "demo", "--set", "runtime.threads=1"],
                            env=ros_env)  # the nodes' profile: no params file, the built-in default (demo)
    nodes = {n: node_process([
        "-r", f"__node:=emotion_node_{n}", "-p", f"topics.emotion_state:=emotion_state_{n}",
        "-p", "use_sim_time:=true", "-p", "topics.sensor_qos:=reliable", "-p", "runtime.diagnostics_hz:=5.0",
        "-p", "runtime.threads:=1", "-p", "features.face_expert:=false", "-p", "runtime.backend:=triton",
        "-p", f"triton.url:={server.url('grpc')}", "-p", "triton.timeout_s:=30.0", "-p", "triton.retries:=0",
        "-p", "triton.retry_interval_s:=1.0"]) for n in NAMES}
    try:
        server.wait_ready(400)
        pids = server.server_pids()
        assert pids, server.output()[-3000:]
        res = subprocess.run([sys.executable, str(CLIENT), "--topics", ",".join(f"emotion_state_{n}" for n in NAMES),
                              "--nodes", ",".join(f"/emotion_node_{n}" for n in NAMES),
                              "--kill", ",".join(map(str, pids)), "--timeout", "180"],
                             cwd=ROOT, env=ros_env, capture_output=True, text=True, timeout=600)
        logs = {n: node.output() for n, node in nodes.items()}
        if res.returncode != 0:
            pytest.fail(f"client failed ({res.returncode}):\n{res.stderr[-3000:]}\n"
                        + "\n".join(f"--- node {n}:\n{log[-2000:]}" for n, log in logs.items()))
        server_status = server.proc.wait(60)
        yield json.loads(res.stdout), logs, server_status, {n: node.alive() for n, node in nodes.items()}
    finally:
        for node in nodes.values():
            node.stop()
        server.stop()


def test_both_nodes_were_answered_by_the_shared_server(fleet_run):
    out, logs, _, _ = fleet_run
    states = [out["before"][f"emotion_state_{n}"] for n in NAMES]
    assert all(s is not None for s in states), {n: log[-2000:] for n, log in logs.items()}
    for s in states:
        assert s["backend"] == "triton" and s["model"] == "meld_minilm"
        assert math.isclose(sum(s["probabilities"]), 1.0, abs_tol=1e-5)
    a, b = (s["probabilities"] for s in states)
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-6  # one model, the same window: the same answer
    assert states[0]["label"] == states[1]["label"]


def test_a_killed_server_loses_no_window_and_is_counted(fleet_run):
    out, logs, server_status, alive = fleet_run
    for n in NAMES:
        s = out["after"][f"emotion_state_{n}"]
        assert s is not None, logs[n][-3000:]  # the window after the kill was published
        assert s["backend"] == "onnxruntime" and math.isclose(sum(s["probabilities"]), 1.0, abs_tol=1e-5)
        diag = out["diag"][f"/emotion_node_{n}"]
        assert int(diag["backend.triton"]) >= 1 and int(diag["backend.fallback"]) >= 1, diag
        assert int(diag["backend.failures"]) >= 1 and int(diag["backend.bad_replies"]) == 0, diag
        assert "backend triton got no answer from" in logs[n] and "onnxruntime answers for" in logs[n]
        assert alive[n]
    assert out["killed"] and server_status == 1
