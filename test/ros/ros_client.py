"""Client process for the node tests (run as a script, never imported by pytest's process).

    python ros_client.py params  NODE_FQN KEY...        -> JSON: descriptors + values
    python ros_client.py set     NODE_FQN KEY YAML_VALUE -> JSON: {successful, reason}
    python ros_client.py state   NODE_FQN                -> JSON: {state}
    python ros_client.py transition NODE_FQN LABEL       -> JSON: {success, state}
    python ros_client.py scenario CASE...                -> JSON: one record per case
    python ros_client.py pending                         -> JSON: states received (see run_pending)
    python ros_client.py diag    KEY...                  -> JSON: {published, diag} (see run_diag)

``scenario`` publishes ``/clock`` by hand (the node runs with use_sim_time), then for
each case sends the bad input, waits until the node's /diagnostics counter for it moves,
sends one valid utterance (frames + audio + final transcript), advances the clock past
the window end and waits for its EmotionState. Every message is real rclpy over DDS.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any, Callable

import numpy as np
import rclpy
import yaml
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from synctva_ros.msg import AudioChunk, EmotionState, Transcript

RATE = 16000
T0 = 100.0  # sim time of the first utterance, seconds
UTTERANCE_S = 2.0
TEXT = "I am so happy to see you again, this is wonderful news!"


def stamp(t: float) -> Time:
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class Client(Node):
    """Publishers of every input topic, subscribers of the outputs, /clock by hand."""

    def __init__(self) -> None:
        super().__init__("synctva_test_client")
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.image_pub = self.create_publisher(Image, "camera/image_raw", reliable)
        self.audio_pub = self.create_publisher(AudioChunk, "audio", reliable)
        self.transcript_pub = self.create_publisher(Transcript, "speech", reliable)
        self.text_pub = self.create_publisher(String, "speech/text", reliable)
        self.states: list[EmotionState] = []
        self.diag: dict[str, str] = {}
        self.diag_level = -1
        self.create_subscription(EmotionState, "emotion_state", self.states.append, reliable)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.now = 0.0

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if "emotion_node" in st.name:
                self.diag = {kv.key: kv.value for kv in st.values}
                self.diag_level = int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level)

    def spin_until(self, cond: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.05)
            if cond():
                return True
        return cond()

    def wait_matched(self, timeout: float = 30.0) -> None:
        pubs = [self.clock_pub, self.image_pub, self.audio_pub, self.transcript_pub, self.text_pub]
        ok = self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs)
                             and self.count_publishers("emotion_state") > 0, timeout)
        if not ok:
            raise SystemExit("node topics never matched")

    def set_clock(self, t: float) -> None:
        self.now = t
        self.clock_pub.publish(Clock(clock=stamp(t)))

    def counter(self, key: str) -> int:
        """A node counter (``count.<key>``) or a windower stat (``windower.<stat>``) from /diagnostics."""
        return int(self.diag.get(key if key.startswith("windower.") else f"count.{key}", "0"))

    # ------------------------------------------------------------ messages
    def image(self, t: float, *, encoding: str = "rgb8", step: int | None = None, h: int = 48,
              w: int = 64) -> Image:
        rng = np.random.default_rng(int(t * 1000))
        data = rng.integers(0, 255, (h, w, 3), dtype=np.uint8).tobytes()
        return Image(header=Header(stamp=stamp(t), frame_id="camera"), height=h, width=w, encoding=encoding,
                     is_bigendian=0, step=w * 3 if step is None else step, data=data)

    def audio(self, t: float, samples: np.ndarray, *, rate: int = RATE, encoding: str = "S16LE") -> AudioChunk:
        if encoding == "S16LE":
            data = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        else:
            data = samples.astype("<f4").tobytes()
        return AudioChunk(header=Header(stamp=stamp(t), frame_id="mic"), sample_rate=rate, channels=1,
                          encoding=encoding, data=data)

    def transcript(self, text: str, start: float, end: float, uid: str, *, final: bool = True) -> Transcript:
        return Transcript(header=Header(stamp=stamp(end)), text=text, is_final=final, start=stamp(start),
                          end=stamp(end), confidence=0.9, language="en-US", speaker_id="", dialogue_id="d0",
                          utterance_id=uid)

    def speech(self, n: int, seed: int) -> np.ndarray:
        """A voiced, speech-like signal: harmonic glottal pulses with a moving pitch, plus noise."""
        rng = np.random.default_rng(seed)
        t = np.arange(n) / RATE
        f0 = 140 + 30 * np.sin(2 * np.pi * 1.5 * t)
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
        return (0.3 * x / np.abs(x).max() + 0.01 * rng.standard_normal(n)).astype(np.float32)

    def utterance(self, t: float, uid: str) -> None:
        """Frames (5 Hz), audio (0.1 s chunks) and a final transcript over [t, t + UTTERANCE_S]."""
        audio = self.speech(int(UTTERANCE_S * RATE), seed=int(t))
        chunk = RATE // 10
        for i in range(0, audio.size, chunk):
            self.audio_pub.publish(self.audio(t + i / RATE, audio[i:i + chunk]))
            if i % (2 * chunk) == 0:
                self.image_pub.publish(self.image(t + i / RATE))
            self.set_clock(t + i / RATE)
            rclpy.spin_once(self, timeout_sec=0.002)
        self.transcript_pub.publish(self.transcript(TEXT, t, t + UTTERANCE_S, uid))


# ------------------------------------------------------------------ cases
def _bad_inputs(c: Client, case: str, t: float) -> list[tuple[Any, Any]]:
    """(publisher, message) pairs of one bad-input case, stamped before ``t``."""
    noise = np.random.default_rng(0).standard_normal(1600).astype(np.float32) * 0.1
    if case == "image_unknown_encoding":
        return [(c.image_pub, c.image(t - 0.5, encoding="weird42"))]
    if case == "image_wrong_step":
        return [(c.image_pub, c.image(t - 0.5, step=10))]
    if case == "audio_empty":
        return [(c.audio_pub, c.audio(t - 0.5, np.zeros(0, np.float32)))]
    if case == "audio_nan":
        bad = noise.copy()
        bad[100:200] = np.nan
        return [(c.audio_pub, c.audio(t - 0.5, bad, encoding="F32LE"))]
    if case == "audio_bad_rate":
        return [(c.audio_pub, c.audio(t - 0.5, noise, rate=1_000_000))]
    if case == "transcript_empty":
        return [(c.transcript_pub, c.transcript("", t - 1.0, t - 0.5, "bad-empty"))]
    if case == "transcript_10mb":
        return [(c.transcript_pub, c.transcript("blah " * (2 * 1024 * 1024), t - 1.5, t - 0.5, "bad-huge"))]
    if case == "stamps_out_of_order":
        return [(c.image_pub, c.image(t - 0.5)), (c.image_pub, c.image(t - 0.8))]
    if case == "stamps_backwards":
        return [(c.audio_pub, c.audio(t - 0.5, noise)), (c.audio_pub, c.audio(t - 50.0, noise))]
    if case == "image_zero_stamp":  # a driver that leaves the stamp unset, 6 frames within one clock tick:
        return [(c.image_pub, c.image(0.0)) for _ in range(6)]  # stamped on arrival, 5 thinned (10 Hz)
    raise SystemExit(f"unknown case {case}")


#: diagnostics counter each case must move
EXPECTED = {
    "image_unknown_encoding": "bad_image",
    "image_wrong_step": "bad_image",
    "audio_empty": "empty_audio",
    "audio_nan": "bad_audio",
    "audio_bad_rate": "bad_audio",
    "transcript_empty": "empty_transcript",
    "transcript_10mb": "transcript_truncated",
    "stamps_out_of_order": "windower.out_of_order",
    "stamps_backwards": "windower.time_resets",
    "image_zero_stamp": "windower.thinned_frames",
}


def _state_dict(m: EmotionState) -> dict[str, Any]:
    return {
        "stamp": m.header.stamp.sec + m.header.stamp.nanosec * 1e-9,
        "window_start": m.window_start.sec + m.window_start.nanosec * 1e-9,
        "window_end": m.window_end.sec + m.window_end.nanosec * 1e-9,
        "label": m.label, "label_index": int(m.label_index), "class_names": list(m.class_names),
        "probabilities": [float(p) for p in m.probabilities], "confidence": float(m.confidence),
        "valence": float(m.valence), "arousal": float(m.arousal), "modalities": list(m.modalities),
        "present": [bool(p) for p in m.present], "active": [bool(a) for a in m.active],
        "contributions": [float(x) for x in m.contributions], "transcript_len": len(m.transcript),
        "transcript": m.transcript[:200], "utterance_id": m.utterance_id, "dialogue_id": m.dialogue_id,
        "model": m.model, "backend": m.backend, "latency": float(m.latency),
        "frame_id": m.header.frame_id, "voice_id": m.voice_id, "person_id": m.person_id, "face_id": m.face_id,
        "face_track_id": int(m.face_track_id),
    }


def run_scenario(cases: list[str], timeout: float) -> dict[str, Any]:
    c = Client()
    c.set_clock(T0 - 10.0)
    c.wait_matched()
    c.spin_until(lambda: bool(c.diag), timeout)  # node alive and reporting
    records = []
    t = T0
    for case in ["baseline"] + cases:
        before = c.counter(EXPECTED.get(case, "published"))
        before_all = dict(c.diag)
        if case != "baseline":
            for pub, msg in _bad_inputs(c, case, t):
                pub.publish(msg)
                rclpy.spin_once(c, timeout_sec=0.01)
            key = EXPECTED[case]
            counted = c.spin_until(lambda: c.counter(key) > before, timeout)
        else:
            counted = True
        uid = f"u-{case}"
        state, clock = _utterance_published(c, t, uid, timeout)
        c.spin_until(lambda: c.diag != before_all, 3.0)
        records.append({"case": case, "counted": counted, "counter_before": before,
                        "counter_after": c.counter(EXPECTED.get(case, "published")),
                        "state": _state_dict(state) if state else None, "diag": dict(c.diag),
                        "all_uids": [s.utterance_id for s in c.states],
                        "transcript_lens": {s.utterance_id: len(s.transcript) for s in c.states}})
        t = clock + 2.0
    c.destroy_node()
    return {"records": records, "diag_level": c.diag_level}


def _utterance_published(c: Client, t: float, uid: str, timeout: float) -> tuple[EmotionState | None, float]:
    """Send one valid utterance at ``t`` and advance sim time past its end (+ late wait) until its EmotionState
    comes: ``(state or None after timeout, the clock reached)``."""
    c.utterance(t, uid)
    end = t + UTTERANCE_S

    def got() -> bool:
        return any(s.utterance_id == uid for s in c.states)

    deadline = time.monotonic() + timeout
    clock = end
    while not got() and time.monotonic() < deadline:
        clock = min(clock + 0.1, end + 3.0)
        c.set_clock(clock)
        c.spin_until(got, 0.05)
    return next((s for s in c.states if s.utterance_id == uid), None), clock


def run_diag(keys: list[str], timeout: float) -> dict[str, Any]:
    """One valid utterance, then the node's /diagnostics values once those of ``keys`` add up to 1 at least
    (values the worker sets after publishing, such as ``memory.trims``, come a moment after the EmotionState)."""
    c = Client()
    c.set_clock(T0 - 10.0)
    c.wait_matched()
    state, _ = _utterance_published(c, T0, "u-diag", timeout)

    def moved() -> bool:
        return sum(int(float(c.diag.get(k, "0"))) for k in keys) >= 1

    c.spin_until(moved, timeout)
    c.destroy_node()
    return {"published": state is not None, "diag": dict(c.diag)}


def run_pending(timeout: float) -> dict[str, Any]:
    """Send one utterance but keep /clock before its end (the window stays pending), print
    READY on stderr, then wait for its EmotionState (the node must flush it when stopped)."""
    c = Client()
    c.set_clock(T0 - 10.0)
    c.wait_matched()
    c.utterance(T0, "u-pending")
    # let the transcript arrive (counted in the node's /diagnostics: a loaded machine may take
    # seconds to work through the frames and audio before it); clock stays < end + late_s
    c.spin_until(lambda: c.counter("transcript_in") >= 1, timeout)
    early = [s.utterance_id for s in c.states]
    print("READY", file=sys.stderr, flush=True)
    c.spin_until(lambda: any(s.utterance_id == "u-pending" for s in c.states), timeout)
    out = {"early": early, "states": [_state_dict(s) for s in c.states]}
    c.destroy_node()
    return out


# -------------------------------------------------------------- services
def _call(node: Node, srv_type: Any, name: str, request: Any, timeout: float = 30.0) -> Any:
    cli = node.create_client(srv_type, name)
    if not cli.wait_for_service(timeout_sec=timeout):
        raise SystemExit(f"service {name} not available")
    fut = cli.call_async(request)
    rclpy.spin_until_future_complete(node, fut, timeout_sec=timeout)
    if not fut.done():
        raise SystemExit(f"service {name} timed out")
    return fut.result()


def _value(v: Any) -> Any:
    p = Parameter.from_parameter_msg(ParameterMsg(name="x", value=v))
    val = p.value
    return list(val) if isinstance(val, (list, tuple)) or hasattr(val, "tolist") else val


def run_params(node_fqn: str, keys: list[str]) -> dict[str, Any]:
    n = Node("synctva_param_client")
    desc = _call(n, DescribeParameters, f"{node_fqn}/describe_parameters", DescribeParameters.Request(names=keys))
    vals = _call(n, GetParameters, f"{node_fqn}/get_parameters", GetParameters.Request(names=keys))
    out = {}
    for key, d, v in zip(keys, desc.descriptors, vals.values):
        out[key] = {
            "name": d.name, "type": int(d.type), "description": d.description, "read_only": bool(d.read_only),
            "additional_constraints": d.additional_constraints,
            "float_range": [[r.from_value, r.to_value, r.step] for r in d.floating_point_range],
            "int_range": [[r.from_value, r.to_value, r.step] for r in d.integer_range],
            "value": _value(v),
        }
    n.destroy_node()
    return out


def run_set(node_fqn: str, key: str, raw: str) -> dict[str, Any]:
    n = Node("synctva_set_client")
    value = yaml.safe_load(raw)
    msg = Parameter(key, value=value).to_parameter_msg()
    res = _call(n, SetParameters, f"{node_fqn}/set_parameters", SetParameters.Request(parameters=[msg]))
    n.destroy_node()
    r = res.results[0]
    return {"successful": bool(r.successful), "reason": r.reason}


def run_transition(node_fqn: str, transition: str, timeout: float = 30.0) -> dict[str, Any]:
    """Request a lifecycle transition by label (configure, activate, ...) and read the state after."""
    n = Node("synctva_lifecycle_client")
    tid = getattr(Transition, f"TRANSITION_{transition.upper()}")
    res = _call(n, ChangeState, f"{node_fqn}/change_state", ChangeState.Request(transition=Transition(id=tid)),
                timeout=timeout)
    state = _call(n, GetState, f"{node_fqn}/get_state", GetState.Request())
    n.destroy_node()
    return {"success": bool(res.success), "state": state.current_state.label}


def run_state(node_fqn: str) -> dict[str, Any]:
    n = Node("synctva_state_client")
    res = _call(n, GetState, f"{node_fqn}/get_state", GetState.Request())
    n.destroy_node()
    return {"state": res.current_state.label}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["params", "set", "state", "transition", "scenario", "pending", "diag"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    rclpy.init()
    try:
        if a.command == "params":
            out = run_params(a.args[0], a.args[1:])
        elif a.command == "set":
            out = run_set(a.args[0], a.args[1], a.args[2])
        elif a.command == "transition":
            out = run_transition(a.args[0], a.args[1], a.timeout)
        elif a.command == "state":
            out = run_state(a.args[0])
        elif a.command == "pending":
            out = run_pending(a.timeout)
        elif a.command == "diag":
            out = run_diag(a.args, a.timeout)
        else:
            out = run_scenario(a.args, a.timeout)
    finally:
        rclpy.try_shutdown()
    json.dump(out, sys.stdout, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
    return 0


if __name__ == "__main__":
    sys.exit(main())
