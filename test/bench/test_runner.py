"""A tiny ``synctva bench`` run (2 repeats, demo configuration, dev checkpoint): JSON schema, PNG, printed summary."""

from __future__ import annotations

import json

import pytest
import torch

from synctva_ros.bench.runner import BENCH_SCHEMA_KEYS, ROW_KEYS, format_summary, run_bench
from synctva_ros.bench.setups import dev_checkpoint
from synctva_ros.cli import build_parser
from synctva_ros.config import load_config
from synctva_ros.datasets.speech import espeak_binary
from synctva_ros.features.registry import build_extractors


def test_tiny_bench_writes_json_and_png(tmp_path, monkeypatch, capsys) -> None:
    try:
        espeak_binary()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("SYNCTVA_CACHE", str(tmp_path / "cache"))
    cfg = load_config("demo")
    ckpt = dev_checkpoint(tmp_path / "ckpt", cfg, build_extractors(cfg.features, modalities=("text", "audio")),
                          steps=2)
    args = build_parser().parse_args(["bench", "--out", str(tmp_path / "out"), "--repeats", "2", "--configs", "demo",
                                      "--checkpoint", str(ckpt), "--set", "runtime.threads=1"])
    assert args.func(args) == 0
    doc = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert set(BENCH_SCHEMA_KEYS) <= set(doc)
    assert doc["meta"]["peak_gflops_fp32_measured"] > 0
    backends = {r["backend"] for r in doc["rows"]}
    assert {"torch fp32", "torch bf16", "onnxruntime", "onnxruntime int8"} <= backends
    assert {r["mode"] for r in doc["rows"]} == {"batch", "streaming"}
    for r in doc["rows"]:
        assert set(ROW_KEYS) <= set(r)
        lat = r["latency_s"]
        assert lat["n"] == 2 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
        assert {"text", "audio", "fusion"} <= set(r["stages_s"])
        assert r["throughput_per_s"] > 0 and r["cpu_util"] > 0 and r["peak_rss_mb"] > 0
        assert r["random_weights"] is False
    streaming = [r for r in doc["rows"] if r["mode"] == "streaming"]
    # both timed windows: audio from the cache, text from the prefetch at the final transcript
    assert all(r["streaming"] == {"audio_context": 2, "text_prefetch_hit": 2} for r in streaming), streaming
    assert doc["flops"]["demo"]["fusion"]["flops"] > 0 and doc["flops"]["demo"]["text"]["flops"] > 0
    # the text stage's bound is counted with the context the timed windows have (they follow each other in one
    # dialogue, so all but the first few read the profile's full context)
    assert doc["flops"]["demo"]["text"]["context_turns"] == cfg.features.text_context_turns == 4
    assert set(doc["fusion_only"][0]["p50_s"]) == {"torch fp32", "onnxruntime", "onnxruntime int8"}
    assert "tensorrt" in doc["unavailable"] or "tensorrt fp16" in backends
    png = (tmp_path / "out" / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # what `synctva bench` printed: a header, one line per row, the unavailable backends, the files
    printed = capsys.readouterr().out.splitlines()
    assert printed == format_summary(doc, tmp_path / "out").splitlines()
    assert printed[0].split() == ["configuration", "backend", "mode", "p50", "ms", "p95", "ms", "p99", "ms", "utt/s"]
    assert len([line for line in printed if line.startswith("demo ")]) == len(doc["rows"])
    assert printed[-1] == f"wrote {tmp_path / 'out' / 'bench.json'} and {tmp_path / 'out' / 'bench.png'}"


def test_format_summary_rows_in_milliseconds(tmp_path) -> None:
    row = {"config": "demo", "backend": "onnxruntime", "mode": "streaming", "throughput_per_s": 4.5,
           "latency_s": {"p50": 0.0125, "p95": 0.02, "p99": 0.03125}}
    text = format_summary({"rows": [row], "unavailable": {"cuda": "no GPU"}}, tmp_path)
    lines = text.splitlines()
    assert lines[1].split() == ["demo", "onnxruntime", "streaming", "12.5", "20.0", "31.2", "4.50"]
    assert lines[2] == "not measured: cuda: no GPU"
    assert len(lines) == 4


def test_configs_must_be_a_sequence_of_names(tmp_path) -> None:
    with pytest.raises(TypeError, match="sequence of names"):
        run_bench(out_dir=tmp_path, configs="demo,paper_random")
    assert not any(tmp_path.iterdir())  # nothing measured or written


def test_gpu_rows_take_their_lower_bound_from_the_gpu_peak() -> None:
    from synctva_ros.bench.inputs import measure_peak_gflops
    from synctva_ros.bench.runner import GPU_ROWS, _row_peak

    meta: dict = {}
    assert _row_peak("torch fp32", 123.0, meta) == 123.0 and meta == {}  # CPU rows: the CPU's peak
    if not torch.cuda.is_available():  # here: no GPU rows exist; the CPU's peak stands in and nothing is recorded
        assert _row_peak("torch cuda graphs", 123.0, meta) == 123.0 and meta == {}
        with pytest.raises((RuntimeError, AssertionError)):
            measure_peak_gflops(device="cuda")
        return
    gpu = _row_peak("torch cuda graphs", 123.0, meta)
    assert gpu == meta["peak_gflops_fp32_gpu_measured"] > 123.0
    assert all(_row_peak(r, 1.0, meta) == gpu for r in GPU_ROWS)
