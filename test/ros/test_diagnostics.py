"""The /diagnostics status: WARN/ERROR latency thresholds and the values (real diagnostic_msgs, no node), and the
heap trimmer's and arena limit's values read from a running node's real /diagnostics topic."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from synctva_ros.core import memory
from synctva_ros.core.memory import HeapTrimmer
from synctva_ros.ros.diagnostics import diagnostic_array, emotion_status, latency_level, status_values
from synctva_ros.ros.latency import LatencySnapshot, LatencyStats

from node_runs import tiny_node_args  # test/ros helper (the node's common arguments)

MEMORY_KEYS = ["memory.trims", "memory.trims_skipped", "memory.trim_s", "memory.arena_max", "memory.mmap_threshold"]


@pytest.mark.parametrize("active, worst, expected", [
    (True, 0.2, (DiagnosticStatus.OK, "ok")),
    (True, 0.5, (DiagnosticStatus.OK, "ok")),  # at the threshold: not above it
    (True, 0.75, (DiagnosticStatus.WARN, "latency 0.750 s > 0.500 s")),
    (True, 2.5, (DiagnosticStatus.ERROR, "latency 2.500 s > 2.000 s")),
    (False, 0.0, (DiagnosticStatus.WARN, "inactive")),
    (False, 9.0, (DiagnosticStatus.WARN, "inactive")),  # inactive wins over latency
])
def test_latency_level(active, worst, expected):
    assert latency_level(active, worst, warn_s=0.5, error_s=2.0) == expected


class StreamingCache:
    """Has what the node reads from a pipeline's streaming cache: describe()."""

    def describe(self) -> dict:
        return {"stats": {"audio_context": 4, "audio_batch:gap": 1}, "audio_mode": "context", "drain_timeout": 0}


class Pipeline:
    name = "meld_minilm"
    backend_name = "onnxruntime"
    streaming = StreamingCache()


def test_values_in_report_order():
    stats = LatencyStats()
    for v in (0.1, 0.3, 0.2):
        stats.add(v)
    values = status_values({"windows": 3, "audio_in": 40, "bad_image": 1}, stats.report(), 2, Pipeline(),
                           {"frames": 7, "time_resets": 0})
    assert list(values) == ["count.audio_in", "count.bad_image", "count.windows", "latency.last_s",
                            "latency.max_period_s", "latency.p50_s", "latency.p95_s", "queue", "model", "backend",
                            "windower.frames", "windower.time_resets", "streaming.audio_batch:gap",
                            "streaming.audio_context", "streaming.audio_mode", "streaming.drain_timeout",
                            "checkpoint.refused", "checkpoint.unrecorded", "checkpoint.verified",
                            "engine_cache.builds", "engine_cache.hits", "engine_cache.rebuilt_mismatch"]
    assert values["count.audio_in"] == "40"
    assert values["latency.last_s"] == "0.2000" and values["latency.max_period_s"] == "0.3000"
    assert values["latency.p50_s"] == "0.2000" and values["latency.p95_s"] == "0.3000"
    assert values["queue"] == "2" and values["model"] == "meld_minilm" and values["backend"] == "onnxruntime"
    assert values["streaming.audio_context"] == "4" and values["streaming.audio_mode"] == "context"
    assert Pipeline.streaming.describe()["stats"]  # the cache's own dict was not emptied


def test_values_before_configure():
    snap = LatencyStats().report()
    values = status_values({}, snap, 0, None, None)
    assert values == {"latency.last_s": "nan", "latency.max_period_s": "0.0000", "queue": "0", "model": "",
                      "backend": ""}


def test_status_and_array():
    snap = LatencySnapshot(last_s=1.0, worst_s=1.5, p50_s=1.0, p95_s=1.5)
    st = emotion_status("/robot1/emotion_node", True, snap, 0.5, 2.0, {"queue": "0", "model": "m"})
    assert st.level == DiagnosticStatus.WARN and st.message == "latency 1.500 s > 0.500 s"
    assert st.name == "/robot1/emotion_node: emotion recognition" and st.hardware_id == ""
    assert [(kv.key, kv.value) for kv in st.values] == [("queue", "0"), ("model", "m")]
    arr = diagnostic_array(Time(sec=12, nanosec=5), [st])
    assert (arr.header.stamp.sec, arr.header.stamp.nanosec) == (12, 5)
    assert len(arr.status) == 1 and arr.status[0].message == st.message
    assert not math.isnan(snap.worst_s)


def test_checkpoint_integrity_outcomes_are_reported(tiny_checkpoint):
    """A real checkpoint load in this process moves ``checkpoint.verified`` (the node loads at configure)."""
    from synctva_ros.checkpoint import load_checkpoint  # deferred: torch, only this test loads a checkpoint

    snap = LatencyStats().report()
    before = int(status_values({}, snap, 0, Pipeline())["checkpoint.verified"])
    load_checkpoint(tiny_checkpoint)
    after = status_values({}, snap, 0, Pipeline())
    assert int(after["checkpoint.verified"]) == before + 1
    assert int(after["engine_cache.rebuilt_mismatch"]) >= 0 and "checkpoint.refused" in after


def test_heap_trimmer_and_arena_limit_values(monkeypatch):
    """The worker's HeapTrimmer counters and the arena limit in effect come last, as strings."""
    now = [100.0]
    trimmer = HeapTrimmer(min_interval_s=10.0, clock=lambda: now[0])
    trimmer()
    trimmer()  # within the interval: skipped
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the environment's limit wins (core.memory.limit_arenas)
    values = status_values({"windows": 1}, LatencyStats().report(), 0, None, None, trimmer)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "262144")
    values = status_values({"windows": 1}, LatencyStats().report(), 0, None, None, trimmer)
    assert list(values)[-5:] == MEMORY_KEYS
    trims = 1 if trimmer.available else 0
    assert values["memory.trims"] == str(trims) and values["memory.trims_skipped"] == str(2 - trims)
    assert float(values["memory.trim_s"]) >= 0.0 and len(values["memory.trim_s"].split(".")[1]) == 4
    assert values["memory.arena_max"] == "4" and values["memory.mmap_threshold"] == "262144"
    assert not any(k.startswith("memory.") for k in status_values({}, LatencyStats().report(), 0, None))


def test_heap_trims_and_arena_limit_on_the_real_diagnostics_topic(node_process, run_client, tiny_checkpoint):
    """A node process (the console entry: ``main`` limits the malloc arenas before any thread starts) publishes one
    window; its /diagnostics, read by another process, then show the worker's trimmer after that window (one trim
    with glibc, one skipped call without) and the arena limit in effect."""
    node = node_process(tiny_node_args(Path(tiny_checkpoint), "-p", "runtime.diagnostics_hz:=5.0"))
    try:
        out = run_client("diag", "memory.trims", "memory.trims_skipped", "--timeout", "90", timeout=600)
        alive = node.alive()
    finally:
        status = node.stop()
    log = node.output()[-3000:]
    diag = out["diag"]
    assert out["published"] and alive and status == 0, log
    assert all(k in diag for k in MEMORY_KEYS), (diag, log)
    glibc = memory.glibc() is not None
    assert int(diag["memory.trims"]) + int(diag["memory.trims_skipped"]) >= 1, diag
    assert int(diag["memory.trims"]) >= (1 if glibc else 0), diag  # a first call always trims (with glibc)
    assert float(diag["memory.trim_s"]) >= 0.0
    expected = os.environ.get("MALLOC_ARENA_MAX") or (str(memory.ARENA_MAX) if glibc else memory.ARENA_DEFAULT)
    assert diag["memory.arena_max"] == expected
    default = str(memory.MMAP_THRESHOLD) if glibc else memory.ARENA_DEFAULT
    expected = os.environ.get("MALLOC_MMAP_THRESHOLD_") or default
    assert diag["memory.mmap_threshold"] == expected
