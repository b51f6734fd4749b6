"""``synctva demo``: the node on a real rosbag, end to end, as three processes.

1. the emotion node (``emotion_node`` console entry, ``use_sim_time``), its own process;
2. ``synctva replay BAG`` publishing the bag with its original timing and ``/clock``;
3. this process, recording ``/emotion_state`` (and the bag's ground truth from the
   bag file itself), then printing one line per utterance and a summary: accuracy and
   weighted F1 against the bag's labels, p50/p95 latency from window close to publish,
   and dropped windows (ground-truth utterances with no EmotionState).

:func:`run_sample_demo` is what ``synctva demo`` runs (the bundled MELD sample unless a bag is
given); :func:`run_demo` runs the node on any bag. The scoring helpers (:func:`result_rows`,
:func:`utterance_lines`, :func:`modality_accuracies`, :func:`diagnostics_lines`) need no ROS.

The sample bag is a **staged recording** when the shared face set is on this machine
(:func:`~synctva_ros.bags.staged_faces.default_faces_csv`): the camera shows, for each utterance, a face
photograph labelled with the utterance's emotion (:mod:`synctva_ros.bags.staged_faces`). The demo says so,
prints each line's face label, and the accuracy of each modality's own distribution (text, audio, visual)
beside the fused one: the visual figure measures the face expert on those photographs, not on a speaker.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from synctva_ros.bags.make_bag import make_bag
from synctva_ros.bags.staged_faces import default_faces_csv, read_staged
from synctva_ros.bags.reader import GroundTruth, ground_truth_from_bag
from synctva_ros.bench.soak import read_proc
from synctva_ros.config import package_root, resolve_path
from synctva_ros.evaluation.summary import MODALITY_FIELDS, modality_accuracies, summarise_predictions
from synctva_ros.ros.node_process import Recorder, console_bin, node_process, ros_env

__all__ = ["run_demo", "run_sample_demo", "ensure_demo_bag", "result_rows", "utterance_lines", "modality_accuracies",
           "diagnostics_lines", "DEMO_CSV", "DEMO_BAG", "MODALITY_FIELDS"]

#: The bundled MELD dev sample (CSV in the repository) and the bag made from it on first use.
DEMO_CSV = "data/demo/meld_dev_sample.csv"
DEMO_BAG = "cache/demo/meld_dev_sample"

#: Diagnostics keys the demo prints (windower thinning and streaming audio outcomes).
_SHOWN_DIAGNOSTICS = ("windower.frames", "windower.thinned_frames", "streaming.audio_context",
                      "streaming.audio_cache")


@dataclass
class _Recording:
    """What the recorder saw: EmotionStates by utterance id, the node's last diagnostics, and the
    node's CPU seconds and this process's monotonic seconds at replay start and end."""

    got: dict[str, Any] = field(default_factory=dict)
    diag: dict[str, str] = field(default_factory=dict)
    cpu0: float | None = None
    cpu1: float | None = None
    wall0: float = 0.0
    wall1: float = 0.0


def _record(node: subprocess.Popen, bag: Path, truth: Sequence[GroundTruth], rate: float, timeout_s: float,
            env: Mapping[str, str], out_dir: Path) -> _Recording:
    """Wait for the node, replay ``bag`` and record ``/emotion_state`` and ``/diagnostics`` until every
    ground-truth utterance has a state, the node exits or ``timeout_s`` passes after the replay.

    Raises:
        RuntimeError: the node exited early or did not come up within 180 s, or the replay failed.
    """
    out = _Recording()

    def on_state(msg: Any) -> None:  # under rec.lock
        out.got[msg.utterance_id or f"{msg.window_end.sec}.{msg.window_end.nanosec:09d}"] = msg

    rec = Recorder(on_state, name="synctva_demo_recorder", env=env)
    try:
        # Wait until the node has subscribed to the bag's topics (its model load takes seconds).
        rec.wait_for_node(node, 180.0, out_dir / "node.log")
        print(f"[demo] node up; replaying {bag} ({len(truth)} utterances, rate {rate})", flush=True)
        out.cpu0, out.wall0 = read_proc(node.pid)[1], time.monotonic()
        replay = subprocess.run([console_bin("synctva"), "replay", str(bag), "--rate", str(rate),
                                 "--topics", "/audio,/camera/image_raw,/speech", "--wait", "60"],
                                env=dict(env), stdin=subprocess.DEVNULL)
        if replay.returncode != 0:
            raise RuntimeError(f"replay failed with exit code {replay.returncode}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with rec.lock:
                if all(t.utterance_id in out.got for t in truth):
                    break
            if node.poll() is not None:
                break
            time.sleep(0.2)
        out.cpu1, out.wall1 = read_proc(node.pid)[1], time.monotonic()
        time.sleep(1.5)  # one more /diagnostics (1 Hz) after the last window
        with rec.lock:
            out.diag = dict(rec.diag)
    finally:
        rec.close()
    return out


def result_rows(truth: Sequence[GroundTruth], got: Mapping[str, Any],
                faces: Mapping[str, Mapping[str, str]] | None = None) -> list[dict[str, Any]]:
    """One row per ground-truth utterance with the EmotionState received for it (if any).

    Args:
        truth: the bag's ground truth (:func:`~synctva_ros.bags.reader.ground_truth_from_bag`).
        got: utterance id -> ``synctva_ros/EmotionState`` (or any object with its fields).
        faces: the staged faces (``{utterance id: {"label", "image"}}``), if the bag is staged.

    Returns:
        Rows with ``utterance_id``, ``truth``, ``transcript``, ``start``/``end`` (seconds, sensor
        time), ``pred`` (``None`` = dropped window), ``confidence``, ``probabilities``,
        ``modalities`` (present), ``active`` (used), ``latency_s`` (window close to publish,
        seconds), ``model``, ``backend``, ``modality_probabilities`` (``{modality: list}`` of the non-empty
        per-modality fields), ``faces_seen``, ``face_track_id``, ``face_label`` (staged face, or None).
    """
    rows = []
    for t in truth:
        msg = got.get(t.utterance_id)
        rows.append({
            "utterance_id": t.utterance_id, "truth": t.label, "transcript": msg.transcript if msg else "",
            "start": t.start, "end": t.end,
            "pred": msg.label if msg else None,
            "confidence": float(msg.confidence) if msg else None,
            "probabilities": [float(x) for x in msg.probabilities] if msg else None,
            "modalities": [m for m, p in zip(msg.modalities, msg.present) if p] if msg else [],
            "active": [m for m, a in zip(msg.modalities, msg.active) if a] if msg else [],
            "latency_s": float(msg.latency) if msg else None,
            "model": msg.model if msg else "", "backend": msg.backend if msg else "",
            "modality_probabilities": {m: [float(x) for x in getattr(msg, f, ())] for m, f in MODALITY_FIELDS.items()
                                       if len(getattr(msg, f, ()))} if msg else {},
            "faces_seen": int(getattr(msg, "faces_seen", 0)) if msg else 0,
            "face_track_id": int(getattr(msg, "face_track_id", -1)) if msg else -1,
            "face_label": (faces or {}).get(t.utterance_id, {}).get("label"),
        })
    return rows


def utterance_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The demo's line per utterance: end time (seconds after the first utterance's start), label,
    confidence, truth, the staged face's label (when there is one), modalities present and used, transcript;
    ``DROPPED`` when no state arrived."""
    t0 = min((r["start"] for r in rows), default=0.0)  # print times relative to the first utterance
    lines = []
    for r in rows:
        if r["pred"] is None:
            lines.append(f"{r['end'] - t0:7.2f}s  DROPPED  truth={r['truth']:<8} {r['transcript'][:60]!r}")
            continue
        face = f"face={r['face_label']:<8} " if r.get("face_label") else ""
        lines.append(f"{r['end'] - t0:7.2f}s  {r['pred']:<8} {r['confidence']:.2f}  truth={r['truth']:<8} {face}"
                     f"[{'+'.join(r['modalities'])}; used {'+'.join(r['active'])}]  {r['transcript'][:60]!r}")
    return lines


def diagnostics_lines(diag: Mapping[str, str]) -> list[str]:
    """What the node received (frames, audio chunks, transcripts) and where its audio features came
    from, from the node's last ``/diagnostics`` key/values."""
    shown = {k: diag[k] for k in _SHOWN_DIAGNOSTICS if k in diag}
    fallbacks = {k: v for k, v in diag.items() if k.startswith("streaming.audio_batch")}
    return [f"node received {diag.get('count.image_in', '?')} camera frames, {diag.get('count.audio_in', '?')} "
            f"audio chunks, {diag.get('count.transcript_in', '?')} transcripts",
            "node diagnostics: " + ", ".join(f"{k} {v}" for k, v in shown.items())
            + (f"; batch fallbacks {fallbacks}" if fallbacks else "; no batch fallback")]


def run_demo(bag: Path, params_file: Path | None = None, rate: float = 1.0, timeout_s: float = 600.0,
             extra_params: list[str] | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    """Run the node on ``bag`` through live topics and score what it publishes.

    Args:
        bag: rosbag2 directory or file written by ``synctva make-bag``.
        params_file: ROS params file for the node (default ``config/emotion.yaml``).
        rate: replay rate factor.
        timeout_s: give up waiting for EmotionStates after this many seconds past replay end.
        extra_params: extra ``name:=value`` ROS parameters for the node.
        out_dir: where to write ``demo_results.json`` and the confusion matrix PNG.

    Returns:
        The summary dict (also printed).

    Raises:
        RuntimeError: the node process exited early (its log tail is in the message).
    """
    env = ros_env()
    params_file = params_file or resolve_path("config/emotion.yaml")
    truth = ground_truth_from_bag(bag)
    out_dir = Path(out_dir or "out/demo")
    out_dir.mkdir(parents=True, exist_ok=True)

    node_cmd = [console_bin("emotion_node"), "--ros-args", "--params-file", str(params_file),
                "-p", "use_sim_time:=true"]
    for p in extra_params or []:
        node_cmd += ["-p", p]
    with node_process(node_cmd, env, out_dir / "node.log", stop_timeout_s=20.0) as node:
        seen = _record(node, bag, truth, rate, timeout_s, env, out_dir)

    staged = read_staged(bag if bag.is_dir() else bag.parent)
    if staged:
        print(f"[demo] STAGED recording: the camera shows, for each utterance, a face photograph from "
              f"{Path(staged['faces_csv']).parent} labelled with the utterance's emotion (not the speaker's face)")
    rows = result_rows(truth, seen.got, staged["utterances"] if staged else None)
    for line in utterance_lines(rows):
        print(line)
    first = next(iter(seen.got.values()), None)
    summary = summarise_predictions(rows, class_names=list(first.class_names) if first else None,
                                    out_dir=out_dir, title="synctva demo (node + replay)")
    if first is not None:
        summary["modality_accuracy"] = acc = modality_accuracies(rows, list(first.class_names))
        print("accuracy per modality: " + ", ".join(
            f"{m} {a['accuracy']:.1%} ({a['correct']}/{a['n']})" if a["n"] else f"{m} -" for m, a in acc.items()))
    summary["extra_messages"] = max(0, len(seen.got) - len(truth))
    if seen.cpu0 is not None and seen.cpu1 is not None:
        busy = sum(r["latency_s"] or 0.0 for r in rows)  # window processing (inference) wall time
        wall = seen.wall1 - seen.wall0
        summary["node_cpu"] = {"cores_total": (seen.cpu1 - seen.cpu0) / wall,
                               "cores_outside_inference": max(0.0, seen.cpu1 - seen.cpu0 - busy) / wall,
                               "wall_s": wall}
        print(f"node CPU during replay: {summary['node_cpu']['cores_total']:.2f} cores on average, about "
              f"{summary['node_cpu']['cores_outside_inference']:.2f} outside inference (CPU time minus the "
              f"windows' processing time)")
    if seen.diag:
        summary["diagnostics"] = dict(seen.diag)
        lines = diagnostics_lines(seen.diag)
        print(lines[0])
        (out_dir / "diagnostics.json").write_text(json.dumps(summary["diagnostics"], indent=2) + "\n")
        print(lines[1])
    return summary


def ensure_demo_bag(bag: Path | None = None) -> Path:
    """The demo bag: ``bag`` if given, else the MELD dev sample, made with ``make_bag`` on first use.

    Raises:
        FileNotFoundError: the sample CSV is missing. RuntimeError: espeak-ng is missing.
    """
    if bag is not None:
        return bag
    out = Path(DEMO_BAG) if Path(DEMO_CSV).exists() else package_root() / DEMO_BAG
    faces = default_faces_csv()
    stale = faces is not None and read_staged(out) is None  # made before the staged faces, or without them
    if not (out / "metadata.yaml").exists() or stale:
        print(f"[demo] making the sample bag {out} from {DEMO_CSV} (espeak-ng speech, 30 fps camera: "
              + (f"staged face photographs from {faces.parent})" if faces else "one photograph; the face set "
                 "../shared/data/faces is not here, so the camera is not staged)"), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        make_bag(resolve_path(DEMO_CSV), out, storage="mcap", faces=faces, overwrite=True)
    return out


def run_sample_demo(*, bag: Path | None = None, rate: float = 1.0, out_dir: Path = Path("out/demo"),
                    params_file: Path | None = None, sensor_qos: str = "reliable",
                    profile: str | None = None) -> dict[str, Any]:
    """``synctva demo``: the node on the MELD dev sample bag (made on first use) or on ``bag``, scored.

    Args:
        bag: bag to use (default: the bundled MELD dev sample, :func:`ensure_demo_bag`).
        rate: replay rate factor.
        out_dir: folder for the results (JSON, table, confusion-matrix PNG, node log).
        params_file: ROS params file for the node (default ``config/emotion.yaml``).
        sensor_qos: the node's camera/microphone QoS, ``reliable`` or ``sensor_data``.
        profile: the node's ``runtime.profile`` (a name in ``config/profiles`` or a YAML path); None keeps the
            params file's (``config/emotion.yaml``: ``quality``).

    Returns:
        The summary (:func:`run_demo`); ``summary["dropped_windows"]`` counts utterances without a state.

    Raises:
        FileNotFoundError: the sample CSV is missing. RuntimeError: espeak-ng is missing, or the node
        exited early / did not come up, or the replay failed.
    """
    bag = ensure_demo_bag(bag)
    # The replay publishes reliably. A best-effort (sensor_data) subscription lost about 90 % of the
    # 0.9 MB camera frames over Fast DDS's default UDP transport here (237 of 2,324 arrived; audio: all),
    # which would hide what the node itself keeps up with; a robot's camera driver publishes best
    # effort, where the default sensor_data QoS is the one that matches (docs/performance.md).
    extra = [f"topics.sensor_qos:={sensor_qos}"] + ([f"runtime.profile:={profile}"] if profile else [])
    return run_demo(bag, params_file=params_file, rate=rate, out_dir=out_dir, extra_params=extra)
