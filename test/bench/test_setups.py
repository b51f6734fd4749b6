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


def _need_mpnet() -> None:
    import pytest
    from text_top_fixtures import real_mpnet

    if real_mpnet() is None:
        pytest.skip("all-mpnet-base-v2 is not installed (make setup PROFILE=quality)")


def test_quality_with_its_shipped_checkpoint_is_labelled_shipped(tmp_path) -> None:
    """With ``models/meld_mpnet`` in place the quality setup benchmarks it (real weights, not latency-only)."""
    import pytest

    from synctva_ros.config import load_config, resolve_path

    _need_mpnet()
    shipped = resolve_path(load_config("quality").runtime.checkpoint)
    if not (shipped / "manifest.json").is_file():
        pytest.skip(f"{shipped} is not shipped")
    (s,) = bench_setups(["quality"], tmp_path / "work", 3, overrides=["runtime.threads=1"])
    assert s.name == "quality" and s.random_weights is False and s.repeats == 3
    assert s.checkpoint == f"shipped: {shipped}" and s.cfg.runtime.checkpoint == str(shipped)


def test_quality_without_its_checkpoint_is_an_untrained_head_over_real_extractors(tmp_path) -> None:
    """Without its trained checkpoint (here: the profile pointed at an empty folder), the quality setup is its real
    mpnet + openSMILE extractors with a head trained on random features, labelled latency only; the head's folder
    is named after the extractors' identities. Its extractor runs the whole encoder (``text_layer`` -1): the
    fine-tuned layers above the profile's ``text_layer`` come only with the checkpoint."""
    from synctva_ros.checkpoint import read_manifest

    _need_mpnet()
    missing = tmp_path / "not_trained"
    (s,) = bench_setups(["quality"], tmp_path / "work", 4,
                        overrides=["runtime.threads=1", f"runtime.checkpoint={missing}"])
    assert s.name == "quality" and s.random_weights is True and s.repeats == 4
    assert s.checkpoint.startswith("untrained head (real all-mpnet-base-v2 and openSMILE eGeMAPSv02; latency only)")
    ckpt = s.cfg.runtime.checkpoint
    assert ckpt.startswith(str(tmp_path / "work" / "dev_quality_"))
    man = read_manifest(ckpt)
    assert man["extractors"]["text"]["name"] == "all-mpnet-base-v2" and man["extractors"]["visual"] is None
    assert man["extractors"]["text"]["layer"] == s.cfg.features.text_layer == -1


def test_paper_random_runs_on_the_device_asked_for(tmp_path) -> None:
    # its random RoBERTa-base and ResNet-50 go where --device says (the GPU rows of issue 12), cpu otherwise;
    # of the other overrides it takes none (they belong to the demo and quality profiles)
    work = tmp_path / "work"
    (plain,) = bench_setups(["paper_random"], work, 10)
    (moved,) = bench_setups(["paper_random"], work, 10,
                            overrides=["runtime.device=cpu", "runtime.threads=1", "runtime.device = cuda:1",
                                       "features.face_crop=false"])
    assert plain.cfg.runtime.device == "cpu" and moved.cfg.runtime.device == "cuda:1"
    assert plain.cfg.features.face_crop and not moved.cfg.features.face_crop
    assert moved.cfg.runtime.threads == plain.cfg.runtime.threads and moved.cfg.runtime.backend == "torch"
    assert plain.random_weights and plain.repeats == 2 and plain.checkpoint.startswith("random: ")
    assert moved.cfg.runtime.checkpoint != plain.cfg.runtime.checkpoint  # another visual extractor, its own head
    (again,) = bench_setups(["paper_random"], work, 10)
    assert again.cfg.runtime.checkpoint == plain.cfg.runtime.checkpoint  # made once and reused
