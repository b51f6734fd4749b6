"""Client process for test_node_triton.py (run as a script): several emotion nodes share one Triton server.

    python triton_node_client.py --topics emotion_state_a,emotion_state_b --nodes /emotion_node_a,/emotion_node_b \
        --kill PID[,PID...] [--timeout S]

Publishes /clock by hand and, to every node at once (they subscribe the same inputs), one utterance; waits for
each node's EmotionState on its own output topic; SIGKILLs the given processes (the tritonserver binary); sends a
second utterance and waits for every node's state again; then waits until each node's /diagnostics counts a
fallback. Prints JSON: ``before`` and ``after`` (topic -> state), ``diag`` (node -> values), ``killed``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ros_client import T0, UTTERANCE_S, Client, _state_dict  # noqa: E402  (a sibling script, not a package)

from synctva_ros.msg import EmotionState  # noqa: E402


class FleetClient(Client):
    """The node tests' client, with one EmotionState subscription per node and diagnostics per node."""

    def __init__(self, topics: list[str], nodes: list[str]) -> None:
        self.diags: dict[str, dict[str, str]] = {}
        super().__init__()
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.by_topic: dict[str, list[EmotionState]] = {t: [] for t in topics}
        for t in topics:
            self.create_subscription(EmotionState, t, self.by_topic[t].append, reliable)
        self.topics, self.nodes = topics, nodes

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            self.diags[st.name.split(":")[0]] = {kv.key: kv.value for kv in st.values}

    def ready(self) -> bool:
        n = len(self.nodes)
        pubs = [self.clock_pub, self.image_pub, self.audio_pub, self.transcript_pub]
        return (all(p.get_subscription_count() >= n for p in pubs)
                and all(self.count_publishers(t) > 0 for t in self.topics)
                and all(node in self.diags for node in self.nodes))

    def send(self, t: float, uid: str, timeout: float) -> dict[str, Any]:
        """One utterance at sensor time ``t``; the clock advanced until every node published it."""
        self.utterance(t, uid)
        end = t + UTTERANCE_S

        def got() -> bool:
            return all(any(s.utterance_id == uid for s in states) for states in self.by_topic.values())

        deadline, clock = time.monotonic() + timeout, end
        while not got() and time.monotonic() < deadline:
            clock = min(clock + 0.1, end + 3.0)
            self.set_clock(clock)
            self.spin_until(got, 0.05)
        return {t: next((_state_dict(s) for s in states if s.utterance_id == uid), None)
                for t, states in self.by_topic.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topics", required=True)
    ap.add_argument("--nodes", required=True)
    ap.add_argument("--kill", default="")
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()
    rclpy.init(args=[])
    c = FleetClient(a.topics.split(","), a.nodes.split(","))
    c.set_clock(T0 - 10.0)
    if not c.spin_until(c.ready, a.timeout):
        raise SystemExit(f"nodes never ready: diagnostics from {sorted(c.diags)}")
    before = c.send(T0, "u-before", a.timeout)
    killed = []
    for pid in [int(p) for p in a.kill.split(",") if p]:
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    after = c.send(c.now + 2.0, "u-after", a.timeout)
    c.spin_until(lambda: all(int(c.diags.get(n, {}).get("backend.fallback", "0")) >= 1 for n in c.nodes), a.timeout)
    print(json.dumps({"before": before, "after": after, "diag": {n: c.diags.get(n, {}) for n in c.nodes},
                      "killed": killed}))
    c.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
