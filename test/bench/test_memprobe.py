"""The memory probe (synctva_ros.bench.memprobe): what one sample holds, the container walk, malloc stats."""

from __future__ import annotations

import collections
import json
import sys

import pytest

from synctva_ros.bench.memprobe import MemoryProbe, container_lengths, malloc_stats, rss_parts
from synctva_ros.features.dialogue import DialogueContext


class Root:  # not a synctva_ros class: the root is walked whatever its class
    def __init__(self) -> None:
        self.dialogue = DialogueContext(max_turns=2, max_sessions=2)
        self.items = [1, 2, 3]
        self.by_id = {"a": collections.deque([1, 2], maxlen=4)}
        self.foreign = collections.OrderedDict(x=1)


def test_container_lengths_walks_the_root_and_this_package_s_objects():
    r = Root()
    r.dialogue.add("s1", "p", "hello")
    out = container_lengths(r)
    assert out["items"] == 3 and out["by_id"] == 1 and out["by_id[]"] == 2 and out["foreign"] == 1
    assert out["dialogue._sessions"] == 1 and out["dialogue._sessions[]"] == 1
    r.items.append(4)
    assert container_lengths(r)["items"] == 4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and glibc")
def test_a_sample_has_rss_malloc_objects_and_the_containers_that_changed(tmp_path):
    r = Root()
    probe = MemoryProbe(tmp_path / "probe.jsonl", root=lambda: r, trim_every=2)
    first = probe.sample()
    assert first["rss_mb"] > 10 and set(first["rss_parts"]) == {"anon", "file", "shmem"}
    assert first["py_objects"] > 1000 and first["containers"] == {} and "trimmed_mb" not in first
    r.items.extend(range(10))
    second = probe.sample()
    assert second["containers"] == {"items": 13} and second["trimmed_mb"] > 10 and second["trim_ms"] >= 0
    if malloc_stats() is not None:  # glibc >= 2.33
        assert second["malloc"]["in_use"] > 0 and second["malloc"]["arena"] >= 0
    assert rss_parts()["anon"] > 0
    probe.interval_s = 0.05
    probe.start()
    import time

    deadline = time.monotonic() + 10
    while not (tmp_path / "probe.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    probe.stop()
    line = json.loads((tmp_path / "probe.jsonl").read_text().splitlines()[0])
    assert line["rss_mb"] > 10
