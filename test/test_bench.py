"""A tiny ``synctva bench`` run (2 repeats, demo configuration, dev checkpoint): JSON schema and PNG."""

from __future__ import annotations

import json

import pytest

from synctva_ros.bags.speech import espeak_binary
from synctva_ros.bench import BENCH_SCHEMA_KEYS, ROW_KEYS
from synctva_ros.cli import build_parser


def test_tiny_bench_writes_json_and_png(tmp_path, monkeypatch) -> None:
    try:
        espeak_binary()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("SYNCTVA_CACHE", str(tmp_path / "cache"))
    from synctva_ros.bench import _dev_checkpoint
    from synctva_ros.config import load_config
    from synctva_ros.features.registry import build_extractors

    cfg = load_config("demo")
    ckpt = _dev_checkpoint(tmp_path / "ckpt", cfg, build_extractors(cfg.features, modalities=("text", "audio")),
                           steps=2)
    args = build_parser().parse_args(["bench", "--out", str(tmp_path / "out"), "--repeats", "2", "--configs", "demo",
                                      "--checkpoint", str(ckpt), "--set", "runtime.threads=1"])
    assert args.func(args) == 0
    doc = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert set(BENCH_SCHEMA_KEYS) <= set(doc)
    assert doc["meta"]["peak_gflops_fp32_measured"] > 0
    backends = {r["backend"] for r in doc["rows"]}
    assert {"torch fp32", "torch bf16", "onnxruntime"} <= backends
    assert {r["mode"] for r in doc["rows"]} == {"batch", "streaming"}
    for r in doc["rows"]:
        assert set(ROW_KEYS) <= set(r)
        lat = r["latency_s"]
        assert lat["n"] == 2 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
        assert {"text", "audio", "fusion"} <= set(r["stages_s"])
        assert r["throughput_per_s"] > 0 and r["cpu_util"] > 0 and r["peak_rss_mb"] > 0
        assert r["random_weights"] is False
    streaming = [r for r in doc["rows"] if r["mode"] == "streaming"]
    assert all(r["streaming"] == {"audio_context": 2} for r in streaming)  # both timed windows from the cache
    assert doc["flops"]["demo"]["fusion"]["flops"] > 0 and doc["flops"]["demo"]["text"]["flops"] > 0
    assert set(doc["fusion_only"][0]["p50_s"]) == {"torch fp32", "onnxruntime"}
    assert "tensorrt" in doc["unavailable"] or "tensorrt fp16" in backends
    png = (tmp_path / "out" / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
