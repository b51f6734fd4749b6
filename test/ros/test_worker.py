"""The inference worker: order, drop-oldest, errors, latency (real thread, no rclpy)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from synctva_ros.ros.worker import MAX_PENDING_WINDOWS, InferenceWorker


@dataclass
class Window:
    start: float
    end: float


class Recorder:
    """Plain callables for the worker; ``predict`` can be held at a gate to let the queue fill."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.log: list[object] = []
        self.rejects: list[tuple[str, str]] = []
        self.latencies: list[float] = []

    def predict(self, window: Window) -> str:
        self.started.set()
        self.gate.wait(10)
        if window.start < 0:
            raise RuntimeError("model exploded")
        return f"result {window.start:g}"

    def publish(self, window: Window, result: str, latency_s: float) -> None:
        if window.start == 99:
            raise OSError("publisher gone")
        self.log.append(result)

    def worker(self, **kwargs: object) -> InferenceWorker:
        return InferenceWorker(self.predict, self.publish, lambda k, m: self.rejects.append((k, m)),
                               self.latencies.append, **kwargs)


def test_windows_are_published_in_order_and_stop_finishes_them():
    rec = Recorder()
    w = rec.worker()
    w.start()
    for i in range(5):
        w.submit(Window(float(i), i + 1.0))
    assert w.stop(10)
    assert rec.log == [f"result {i}" for i in range(5)]
    assert len(rec.latencies) == 5 and rec.rejects == []


def test_oldest_window_is_dropped_and_counted_when_inference_falls_behind():
    rec = Recorder()
    rec.gate.clear()
    w = rec.worker(max_pending=3)
    w.start()
    w.submit(Window(0.0, 1.0))
    assert rec.started.wait(10)  # window 0 is in predict, the queue is empty
    for i in range(1, 6):
        w.submit(Window(float(i), i + 1.0))
    assert w.pending == 3
    assert [k for k, _ in rec.rejects] == ["windows_dropped", "windows_dropped"]
    assert rec.rejects[0][1] == "inference is 3 windows behind: oldest window dropped"
    rec.gate.set()
    assert w.stop(10)
    assert rec.log == ["result 0", "result 3", "result 4", "result 5"]  # 1 and 2 were the oldest waiting


def test_failures_are_counted_and_the_worker_goes_on():
    rec = Recorder()
    w = rec.worker()
    w.start()
    w.submit(Window(-1.0, 0.5))  # predict raises
    w.submit(Window(99.0, 100.0))  # publish raises
    w.submit(Window(2.0, 3.0))
    assert w.stop(10)
    assert [k for k, _ in rec.rejects] == ["pipeline_errors", "pipeline_errors"]
    assert rec.rejects[0][1] == "window [-1.000, 0.500] s failed: RuntimeError: model exploded"
    assert rec.rejects[1][1] == "window [99.000, 100.000] s failed: OSError: publisher gone"
    assert rec.log == ["result 2"] and len(rec.latencies) == 1


def test_latency_runs_from_submit_to_the_end_of_predict():
    now = [10.0]
    rec = Recorder()
    rec.gate.clear()
    seen: list[float] = []
    w = InferenceWorker(lambda win: (rec.gate.wait(10), now.__setitem__(0, 10.75))[1],
                        lambda win, res, lat: seen.append(lat), lambda k, m: None, rec.latencies.append,
                        clock=lambda: now[0])
    w.start()
    w.submit(Window(0.0, 1.0))  # closed at 10.0 s
    rec.gate.set()
    assert w.stop(10)
    assert seen == [pytest.approx(0.75)] and rec.latencies == seen


def test_stop_reports_a_worker_that_does_not_finish():
    rec = Recorder()
    rec.gate.clear()
    w = rec.worker()
    w.start()
    w.submit(Window(0.0, 1.0))
    assert rec.started.wait(10)
    assert not w.stop(0.2)
    rec.gate.set()


def test_unstarted_stop_is_immediate():
    rec = Recorder()
    w = InferenceWorker(rec.predict, rec.publish, lambda k, m: None, rec.latencies.append)
    assert w.stop(0.01)  # never started
    w2 = InferenceWorker(rec.predict, rec.publish, lambda k, m: None, rec.latencies.append)
    w2.start()
    w2.submit(Window(1.0, 2.0))
    assert w2.stop(10)
    assert rec.log == ["result 1"] and w2.max_pending == MAX_PENDING_WINDOWS == 16


def test_idle_runs_after_the_last_waiting_window_only_and_its_errors_are_ignored():
    """The node's heap trimmer runs when no window waits (never between queued windows), failed ones included."""
    rec = Recorder()
    rec.gate.clear()
    calls: list[int] = []

    def idle() -> None:
        calls.append(len(rec.log))
        raise MemoryError("housekeeping failed")  # ignored: the worker goes on

    w = rec.worker(idle=idle)
    w.start()
    w.submit(Window(0.0, 1.0))
    assert rec.started.wait(10)  # window 0 in predict; three more queue behind it
    for start in (1.0, -1.0, 3.0):
        w.submit(Window(start, start + 1.0))
    rec.gate.set()
    _wait_for(lambda: calls)
    assert w.stop(10)
    assert rec.log == ["result 0", "result 1", "result 3"] and calls == [3]
    w2 = rec.worker(idle=lambda: calls.append(-1))
    w2.start()
    w2.submit(Window(-1.0, 0.0))  # a failed window is followed by idle too
    _wait_for(lambda: len(calls) == 2)
    assert w2.stop(10) and calls == [3, -1]


def _wait_for(cond, timeout_s: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
