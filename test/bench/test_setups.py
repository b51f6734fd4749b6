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


def test_quality_without_its_checkpoint_is_an_untrained_head_over_real_extractors(tmp_path) -> None:
    """The quality profile's checkpoint is not trained yet: its real mpnet + openSMILE extractors with a head trained
    on random features, labelled latency only; the head's folder is named after the extractors' identities."""
    import pytest

    from synctva_ros.checkpoint import read_manifest
    from synctva_ros.config import load_config, resolve_path
    from synctva_ros.features.weights import installed_weights

    try:
        installed_weights("all-mpnet-base-v2")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        if (resolve_path(load_config("quality").runtime.checkpoint) / "manifest.json").is_file():
            pytest.skip("the quality checkpoint is trained: the setup uses it")
    except FileNotFoundError:
        pass
    (s,) = bench_setups(["quality"], tmp_path / "work", 4, overrides=["runtime.threads=1"])
    assert s.name == "quality" and s.random_weights is True and s.repeats == 4
    assert s.checkpoint.startswith("untrained head (real all-mpnet-base-v2 and openSMILE eGeMAPSv02; latency only)")
    ckpt = s.cfg.runtime.checkpoint
    assert ckpt.startswith(str(tmp_path / "work" / "dev_quality_"))
    man = read_manifest(ckpt)
    assert man["extractors"]["text"]["name"] == "all-mpnet-base-v2" and man["extractors"]["visual"] is None
