"""``scripts/soak.py``: the emotion node on the looped demo bag for a long time (issue 14), as processes.

What is measured and how it is accounted is in :mod:`synctva_ros.bench.soak`; this runs it, as ``synctva demo``
(:mod:`synctva_ros.ros.demo`) does: the node (``emotion_node``, its own process, ``use_sim_time``, reliable
camera/microphone), the bag replayed in a loop (:func:`~synctva_ros.ros.replay.replay_bag` in a thread, with
``/clock``), and a recorder of ``/emotion_state`` and ``/diagnostics`` in this process.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from synctva_ros.bench.soak import DIAG_KEYS, SOAK_TOPICS, loop_peaks, read_proc, rss_growth, summary_lines, \
    window_accounting
from synctva_ros.ros.node_process import Recorder, console_bin, node_process, ros_env

__all__ = ["run_soak", "probe_env", "probed_node_main", "PROBE_ENV"]

#: Environment of a node started under the memory probe (:func:`probed_node_main`): the JSON-lines file,
#: seconds between samples, tracemalloc on (1), malloc_trim every N samples.
PROBE_ENV = ("SYNCTVA_MEMPROBE", "SYNCTVA_MEMPROBE_S", "SYNCTVA_MEMPROBE_TRACEMALLOC", "SYNCTVA_MEMPROBE_TRIM")


def probe_env(interval_s: float = 30.0, tracemalloc: bool = False, trim_every: int = 0) -> dict[str, str]:
    """:func:`run_soak`'s ``probe``: the :data:`PROBE_ENV` settings (all but the file) of a probed node.

    Args:
        interval_s: seconds between samples.
        tracemalloc: trace Python allocations (slower).
        trim_every: ``malloc_trim(0)`` every this many samples (0: never).
    """
    return {PROBE_ENV[1]: str(interval_s), PROBE_ENV[2]: str(int(tracemalloc)), PROBE_ENV[3]: str(trim_every)}


def probed_node_main(argv: list[str] | None = None) -> int:
    """The ``emotion_node`` entry point with a :class:`~synctva_ros.bench.memprobe.MemoryProbe` inside the node
    process, configured by :data:`PROBE_ENV` (``python -m synctva_ros.ros.soak --ros-args ...``)."""
    from synctva_ros.bench.memprobe import MemoryProbe
    from synctva_ros.ros import node as node_module

    holder: dict[str, Any] = {}

    class ProbedNode(node_module.EmotionNode):  # the node object, for the probe's container walk
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            holder["node"] = self
            super().__init__(*args, **kwargs)

    node_module.EmotionNode = ProbedNode  # type: ignore[misc]  # main() builds it by this name
    probe = MemoryProbe(os.environ[PROBE_ENV[0]], interval_s=float(os.environ.get(PROBE_ENV[1], "30")),
                        root=lambda: holder.get("node"), tracemalloc=os.environ.get(PROBE_ENV[2]) == "1",
                        trim_every=int(os.environ.get(PROBE_ENV[3], "0"))).start()
    try:
        return node_module.main(argv)
    finally:
        probe.stop()


def _bag_counts(bag: Path, topics: Sequence[str]) -> tuple[float, dict[str, int]]:
    """Length of the bag (seconds, first to last message) and messages per replayed topic."""
    from rosbags.highlevel import AnyReader  # deferred: only the soak reads bag metadata

    from synctva_ros.bags.types import get_synctva_typestore

    with AnyReader([bag], default_typestore=get_synctva_typestore()) as reader:
        counts = {c.topic: 0 for c in reader.connections if c.topic in topics}
        for c in reader.connections:
            if c.topic in counts:
                counts[c.topic] += c.msgcount
        return (reader.end_time - reader.start_time) * 1e-9, counts


def _sample(pid: int, t0: float, diag: Mapping[str, str], received: int) -> dict[str, Any]:
    rss, cpu = read_proc(pid)
    return {"wall_s": round(time.monotonic() - t0, 2), "rss_mb": rss, "cpu_s": cpu, "states": received,
            "diag": {k: diag[k] for k in DIAG_KEYS if k in diag}}


def run_soak(*, bag: Path, out_dir: Path, duration_s: float, rate: float = 10.0, sample_s: float = 10.0,
             params_file: Path | None = None, extra_params: Sequence[str] = (), drain_s: float = 30.0,
             startup_timeout_s: float = 300.0, probe: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run the soak (:mod:`synctva_ros.bench.soak`); write ``<out_dir>/soak.json`` and print the summary.

    Args:
        bag: the demo bag (``synctva_ros.ros.demo.ensure_demo_bag``).
        out_dir: for ``soak.json`` and ``node.log``.
        duration_s: wall seconds of replay (the bag loops until then).
        rate: replay speed factor (10 = ten seconds of bag per second).
        sample_s: wall seconds between RSS samples.
        params_file: the node's ROS params file (default ``config/emotion.yaml``).
        extra_params: more ``name:=value`` node parameters.
        drain_s: after the replay stops, wait at most this long for the last EmotionStates.
        startup_timeout_s: longest wait for the node to come up (model loading).
        probe: run the node under the memory probe (:func:`probed_node_main`) with these :data:`PROBE_ENV`
            variables (:func:`probe_env`; ``SYNCTVA_MEMPROBE`` defaults to ``<out_dir>/memprobe.jsonl``); ``None``:
            plain node.

    Returns:
        The document written to ``soak.json`` (``summary``: the printed lines).

    Raises:
        RuntimeError: the node exited or did not come up in time.
    """
    # deferred: the bag reader and the replay need rosbags and rclpy; the helpers above do not
    from synctva_ros.bags.reader import ground_truth_from_bag
    from synctva_ros.config import resolve_path
    from synctva_ros.ros.replay import replay_bag

    env = ros_env()
    ids = [t.utterance_id for t in ground_truth_from_bag(bag)]
    loop_s, per_topic = _bag_counts(bag, SOAK_TOPICS)
    out_dir.mkdir(parents=True, exist_ok=True)
    params_file = params_file or resolve_path("config/emotion.yaml")
    if probe is not None:
        env.update({PROBE_ENV[0]: str(out_dir / "memprobe.jsonl"), **probe})
    node_exe = [sys.executable, "-m", "synctva_ros.ros.soak"] if probe is not None else [console_bin("emotion_node")]
    cmd = [*node_exe, "--ros-args", "--params-file", str(params_file), "-p", "use_sim_time:=true",
           "-p", "topics.sensor_qos:=reliable"]
    for p in extra_params:
        cmd += ["-p", p]
    received: Counter[str] = Counter()
    stop = threading.Event()
    replay: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    with node_process(cmd, env, out_dir / "node.log") as node:
        rec = Recorder(lambda msg: received.update([msg.utterance_id]), name="synctva_soak_recorder", env=env)
        try:
            up = rec.wait_for_node(node, startup_timeout_s, out_dir / "node.log")

            def play() -> None:
                try:
                    replay.update(replay_bag(bag, rate=rate, topics=SOAK_TOPICS, loop=True, wait_for_subscribers_s=60.0,
                                             node=rec.node, stop_event=stop))
                except Exception as exc:  # reported in soak.json and the summary, the soak still ends normally
                    replay["error"] = f"{type(exc).__name__}: {exc}"

            player = threading.Thread(target=play, daemon=True)
            print(f"[soak] node up after {up:.0f} s; replaying {bag} in a loop at {rate:g}x for "
                  f"{duration_s:.0f} s, RSS every {sample_s:g} s", flush=True)
            t0 = time.monotonic()
            player.start()
            while time.monotonic() - t0 < duration_s and node.poll() is None and player.is_alive():
                with rec.lock:
                    samples.append(_sample(node.pid, t0, rec.diag, sum(received.values())))
                s = samples[-1]
                if len(samples) % 6 == 1:
                    print(f"[soak] {s['wall_s']:6.0f} s  RSS {s['rss_mb'] or 0:7.1f} MB  states {s['states']:5d}  "
                          f"resets {s['diag'].get('windower.time_resets', '?')}  frames in "
                          f"{s['diag'].get('count.image_in', '?')}", flush=True)
                time.sleep(max(0.0, t0 + len(samples) * sample_s - time.monotonic()))
            stop.set()
            player.join(60.0)
            wall = time.monotonic() - t0
            n, t_last = sum(received.values()), time.monotonic()
            while time.monotonic() - t_last < min(10.0, drain_s) and time.monotonic() - t0 - wall < drain_s:
                time.sleep(0.5)
                with rec.lock:
                    if sum(received.values()) != n:
                        n, t_last = sum(received.values()), time.monotonic()
            time.sleep(1.5)  # one more /diagnostics
            with rec.lock:
                samples.append(_sample(node.pid, t0, rec.diag, sum(received.values())))
                diag_last, got = dict(rec.diag), dict(received)
        finally:
            stop.set()
            rec.close()
    per_loop = sum(per_topic.values())
    total = sum(replay.get("published", {}).values())
    loops_done, rest = divmod(total, per_loop)
    covered = loops_done * loop_s + rest / per_loop * loop_s
    cpu = [s["cpu_s"] for s in samples if s["cpu_s"] is not None]
    doc: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu_count": os.cpu_count(), "rate": rate,
        "duration_s": duration_s, "sample_s": sample_s, "wall_s": wall, "node_cmd": cmd, "utterances": len(ids),
        "nice": os.nice(0), "env": {k: env.get(k) for k in ("FASTDDS_DEFAULT_PROFILES_FILE", "RMW_IMPLEMENTATION",
                                                           "MALLOC_ARENA_MAX", "ROS_DOMAIN_ID")},
        "bag": {"path": str(bag), "loop_s": loop_s, "per_loop": per_topic, "published": replay.get("published", {}),
                "loops_done": loops_done, "covered_s": covered, "rate_achieved": covered / wall if wall > 0 else 0.0},
        "replay_failed": replay.get("failed", {}), "replay_error": replay.get("error"),
        "restarts": max(0, loops_done + (rest > 0) - 1),
        "node_cpu_cores": (cpu[-1] - cpu[0]) / samples[-1]["wall_s"] if len(cpu) >= 2 else 0.0,
        "rss": {**rss_growth(samples), "loop_peaks": loop_peaks(samples)},
        "windows": window_accounting(ids, got, loops_done), "received": got,
        "diag_last": diag_last, "samples": samples}
    doc["summary"] = summary_lines(doc)
    (out_dir / "soak.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    for line in doc["summary"]:
        print(line, flush=True)
    return doc


if __name__ == "__main__":  # the node under the memory probe (run_soak(probe=...))
    sys.exit(probed_node_main())
