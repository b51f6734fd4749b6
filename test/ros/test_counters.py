"""Counters, throttled warnings and the node callbacks' shared input gate (no rclpy needed)."""

from __future__ import annotations

import threading

from synctva_ros.ros.conversions import InputError
from synctva_ros.ros.counters import WARN_PERIOD_S, Counters, InputGate


class Clock:
    """Settable monotonic clock, seconds."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(period_s: float = WARN_PERIOD_S) -> tuple[Counters, list[str], Clock]:
    lines: list[str] = []
    clock = Clock()
    return Counters(lines.append, period_s=period_s, clock=clock), lines, clock


def test_count_get_and_snapshot():
    c, _, _ = make()
    c.count("audio_in")
    c.count("audio_in", 2)
    assert c.get("audio_in") == 3 and c.get("never") == 0
    snap = c.snapshot()
    c.count("audio_in")
    assert snap == {"audio_in": 3} and c.values == {"audio_in": 4}  # a copy, not the live dict


def test_reject_counts_every_time_and_warns_throttled_per_kind():
    c, lines, clock = make(period_s=5.0)
    for _ in range(3):
        c.reject("bad_audio", "empty chunk")
    c.reject("bad_image", "unsupported image encoding 'yuv'")
    assert c.get("bad_audio") == 3 and c.get("bad_image") == 1
    assert lines == ["empty chunk [bad_audio: 1 so far]", "unsupported image encoding 'yuv' [bad_image: 1 so far]"]
    clock.t += 4.9
    c.reject("bad_audio", "empty chunk")
    assert len(lines) == 2  # still inside the period
    clock.t += 0.1
    c.reject("bad_audio", "empty chunk")
    assert lines[-1] == "empty chunk [bad_audio: 5 so far]"


def test_warn_throttled_reports_whether_it_warned():
    c, lines, clock = make(period_s=1.0)
    assert c.warn_throttled("windower.out_of_order", "a")
    assert not c.warn_throttled("windower.out_of_order", "b")
    assert c.warn_throttled("other", "c")
    clock.t += 1.0
    assert c.warn_throttled("windower.out_of_order", "d")
    assert lines == ["a", "c", "d"] and c.values == {}  # warnings alone count nothing


def test_counting_is_thread_safe():
    c, _, _ = make()
    threads = [threading.Thread(target=lambda: [c.count("x") for _ in range(5000)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.get("x") == 20000


def _gate() -> tuple[InputGate, Counters, list[str], list[object]]:
    c, lines, _ = make()
    return InputGate(c, errors=(InputError,)), c, lines, []


def _convert(msg: object) -> object:
    if msg == "bad":
        raise InputError("bad_audio", "non-finite samples")
    return f"converted {msg}"


def test_gate_drops_everything_while_inactive_without_counting():
    gate, c, lines, handled = _gate()
    assert not gate("ok", _convert, handled.append)
    assert not gate("bad", _convert, handled.append)
    assert handled == [] and c.values == {} and lines == []


def test_gate_hands_converted_value_on_when_active():
    gate, c, _, handled = _gate()
    gate.active = True
    assert gate("ok", _convert, handled.append)
    assert handled == ["converted ok"] and c.values == {}


def test_gate_rejects_conversion_errors_under_their_kind():
    gate, c, lines, handled = _gate()
    gate.active = True
    assert not gate("bad", _convert, handled.append)
    assert not gate("bad", _convert, handled.append)
    assert handled == []
    assert c.get("bad_audio") == 2
    assert lines == ["non-finite samples [bad_audio: 1 so far]"]  # second one throttled


def test_gate_lets_other_errors_through():
    gate, c, _, _ = _gate()
    gate.active = True

    def broken(msg: object) -> object:
        raise KeyError("not an input error")

    try:
        gate("x", broken, lambda v: None)
    except KeyError:
        pass
    else:
        raise AssertionError("a programming error must not be counted as bad input")
    assert c.values == {}
