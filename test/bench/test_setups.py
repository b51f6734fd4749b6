"""Benchmark configurations: which are built, their labels and repeats (no model is loaded)."""

from __future__ import annotations

from synctva_ros.bench.setups import bench_setups


def test_demo_with_a_given_checkpoint(tmp_path) -> None:
    ckpt = tmp_path / "ckpt"
    setups = bench_setups([" demo ", "", "unknown"], tmp_path / "work", 10, profile="demo",
                          overrides=["runtime.threads=1"], checkpoint=ckpt)
    assert len(setups) == 1
    s = setups[0]
    assert s.name == "demo" and s.checkpoint == f"given: {ckpt}" and s.random_weights is False
    assert s.repeats == 10
    assert s.cfg.runtime.checkpoint == str(ckpt) and s.cfg.runtime.threads == 1


def test_no_known_configuration_gives_none(tmp_path) -> None:
    assert bench_setups(["nope"], tmp_path, 5) == []
