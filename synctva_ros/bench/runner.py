"""The ``synctva bench`` run: every configuration x backend x mode, written as ``bench.json`` + ``bench.png``."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from synctva_ros.backends import BackendUnavailable
from synctva_ros.backends.engine_cache import cache_root
from synctva_ros.bench.inputs import measure_peak_gflops, realistic_windows
from synctva_ros.bench.flops import stage_flops
from synctva_ros.bench.measure import (backend_factories, cycled, fusion_only, ready_as_named, run_mode,
                                       select_backends)
from synctva_ros.bench.plot import plot, plot_scaling
from synctva_ros.bench.scaling import run_scaling
from synctva_ros.bench.setups import bench_setups
from synctva_ros.bench.triton import format_triton, triton_rows
from synctva_ros.pipeline import EmotionPipeline
from synctva_ros.streaming import StreamingFeatureCache

__all__ = ["BENCH_SCHEMA_KEYS", "ROW_KEYS", "DEFAULT_CONFIGS", "run_bench", "format_summary"]

log = logging.getLogger(__name__)

#: Top-level keys of bench.json.
BENCH_SCHEMA_KEYS = ("meta", "rows", "fusion_only", "flops", "unavailable")
#: Keys of each ``rows`` entry of bench.json.
ROW_KEYS = ("config", "backend", "mode", "checkpoint", "random_weights", "repeats", "latency_s", "stages_s",
            "throughput_per_s", "cpu_util", "peak_rss_mb", "lower_bound_s", "streaming")
#: Configurations measured by default.
DEFAULT_CONFIGS = ("demo", "paper_random")


def _meta(windows: list[Any], peak: float) -> dict[str, Any]:
    meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.machine(),
            "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "peak_gflops_fp32_measured": peak,
            "peak_note": "best torch.mm 1024x1024 fp32 rate here with torch_threads threads",
            "window_s": windows[0].duration, "frames_per_window": len(windows[0].frames),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        # deferred: onnxruntime is optional here (only its version is recorded)
        import onnxruntime

        meta["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return meta


#: Rows that run on the GPU (their stages' compute lower bound is taken from the GPU's matmul peak).
GPU_ROWS = ("torch cuda fp32", "torch cuda fp16", "torch cuda graphs", "onnxruntime cuda", "tensorrt fp16")


def _row_peak(row: str, cpu_peak: float, meta: dict[str, Any]) -> float:
    """The fp32 matmul peak (GFLOP/s) of the device row ``row`` runs on: the CPU's, or for :data:`GPU_ROWS` the GPU's,
    measured once and recorded in ``meta["peak_gflops_fp32_gpu_measured"]``."""
    if row not in GPU_ROWS or not torch.cuda.is_available():
        return cpu_peak
    if "peak_gflops_fp32_gpu_measured" not in meta:
        meta["peak_gflops_fp32_gpu_measured"] = measure_peak_gflops(device="cuda")
        meta["gpu_peak_note"] = "best torch.mm 4096x4096 fp32 rate on the GPU (lower bounds of the GPU rows)"
    return meta["peak_gflops_fp32_gpu_measured"]


def run_bench(*, out_dir: Path, repeats: int = 50, configs: Sequence[str] = DEFAULT_CONFIGS,
              checkpoint: Path | None = None, profile: str = "demo",
              overrides: Sequence[str] = (), scaling: Mapping[str, Sequence[float]] | None = None,
              scaling_repeats: int = 5, rows: bool = True,
              backends: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark described in :mod:`synctva_ros.bench`; write ``bench.json`` and ``bench.png``.

    For each configuration (:func:`~synctva_ros.bench.setups.bench_setups`) and each backend
    available here (:func:`~synctva_ros.bench.measure.backend_factories`), ``repeats`` windows are
    timed in ``batch`` and ``streaming`` mode (:func:`~synctva_ros.bench.measure.run_mode`); per
    configuration also the FLOPs per stage and the network stage's p50 alone for torch fp32, onnxruntime and
    onnxruntime int8.
    The compute lower bound of a stage is its FLOPs / the measured fp32 matmul peak (seconds) of the device the row
    runs on (the GPU's for :data:`GPU_ROWS`).
    Development checkpoints and random assets are kept in ``<cache_root>/bench``.

    Args:
        out_dir: folder for ``bench.json`` and ``bench.png`` (created).
        repeats: timed windows per backend and mode (at least 1).
        configs: configurations: ``demo`` (``profile`` with its checkpoint) and/or ``paper_random``
            (RoBERTa-base + ResNet-50 sized, random weights: latency only); ``triton`` adds the first
            configuration's network stage locally and through a local Triton server under 1, 4 and 16 concurrent
            clients (``doc["triton"]``, :mod:`~synctva_ros.bench.triton`).
        checkpoint: checkpoint of the ``demo`` configuration (default: the profile's, else a
            development checkpoint).
        profile: profile of the ``demo`` configuration (name in ``config/profiles`` or a YAML path).
        overrides: ``section.key=value`` overrides of the ``demo`` configuration.
        scaling: the scaling series to measure (:mod:`~synctva_ros.bench.scaling`, e.g. its ``SERIES``) on the first
            configuration with its configured backend: ``doc["scaling"]`` and ``bench_scaling.png``; ``None``: none.
        scaling_repeats: timed windows per scaling point.
        rows: measure the backend rows (False: only the scaling series, FLOPs and nothing else).
        backends: measure only these backend rows (e.g. ``["torch cuda fp32", "torch cuda fp16"]`` on a GPU
            machine; :func:`~synctva_ros.bench.measure.select_backends`); ``None`` or empty: every one available.

    Returns:
        The ``bench.json`` document (keys :data:`BENCH_SCHEMA_KEYS`; rows with :data:`ROW_KEYS`).

    Raises:
        TypeError: ``configs`` is a string (pass a sequence of names).
        synctva_ros.datasets.speech.EspeakNotFoundError: espeak-ng is missing (speech of the windows).
        synctva_ros.config.ConfigError: a bad override.
    """
    if isinstance(configs, str):
        raise TypeError(f"configs must be a sequence of names, not the string {configs!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = cache_root(None) / "bench"
    work.mkdir(parents=True, exist_ok=True)
    repeats = max(1, int(repeats))
    windows = realistic_windows()
    peak = measure_peak_gflops()
    doc: dict[str, Any] = {"meta": _meta(windows, peak), "rows": [], "fusion_only": [], "flops": {},
                           "unavailable": {}}
    for setup in bench_setups(configs, work, repeats, profile=profile, overrides=overrides, checkpoint=checkpoint):
        log.info("bench configuration %s (%s)", setup.name, setup.checkpoint)
        pipe = EmotionPipeline(setup.cfg)
        # counted on a window with the context most timed ones have: run_mode cycles the windows of one dialogue, so
        # from the (turns + 1)-th on a window follows the text encoder's full context
        turns = int(getattr(pipe.extractors.get("text"), "context_turns", 0) or 0)
        seq = cycled(windows, turns + 1)
        flops = stage_flops(pipe, seq[-1], seq[:-1])
        doc["flops"][setup.name] = flops
        cache = pipe.streaming or StreamingFeatureCache(
            {m: e for m, e in pipe.extractors.items() if pipe.active[m] and m in ("audio", "visual")},
            audio_mode=setup.cfg.features.streaming_audio)
        built: dict[str, Any] = {}
        if scaling and "scaling" not in doc:
            doc["scaling"] = run_scaling(pipe, setup.cfg, setup.name, scaling, scaling_repeats)
        factories = backend_factories(setup.cfg, pipe, doc["unavailable"]) if rows else []
        for bname, make in select_backends(factories, backends, doc["unavailable"]):
            try:
                backend = make()
            except BackendUnavailable as exc:
                doc["unavailable"][bname] = str(exc)
                continue
            if not ready_as_named(backend, bname, doc["unavailable"]):
                continue
            built[bname] = backend
            pipe.backend = backend  # backend_name follows it
            for mode in ("batch", "streaming"):
                r = run_mode(pipe, windows, setup.repeats, mode, cache)
                row_peak = _row_peak(bname, peak, doc["meta"])  # a GPU row's bound is the GPU's
                lb = {s: (flops[s]["flops"] / (row_peak * 1e9) if flops.get(s, {}).get("flops") else None)
                      for s in ("text", "visual", "face", "fusion")}
                doc["rows"].append({"config": setup.name, "backend": bname, "mode": mode,
                                    "checkpoint": setup.checkpoint, "random_weights": setup.random_weights,
                                    "repeats": setup.repeats, **r, "lower_bound_s": lb})
                if hasattr(backend, "graph_calls"):  # how many windows the CUDA graphs really answered
                    doc["rows"][-1]["cuda_graph_calls"] = {"graph": backend.graph_calls, "eager": backend.eager_calls}
                log.info("%s | %s | %s: p50 %.1f ms", setup.name, bname, mode, 1e3 * r["latency_s"]["p50"])
        if "triton" in configs and "triton" not in doc:  # the first configuration's network through Triton
            doc["triton"] = triton_rows(pipe, windows, repeats, work, unavailable=doc["unavailable"])
        if rows:
            fo = fusion_only(pipe, windows[0], {k: v for k, v in built.items()
                                                if k in ("torch fp32", "onnxruntime", "onnxruntime int8")}, repeats)
            doc["fusion_only"].append({"config": setup.name, "p50_s": fo})
        cache.close()
        pipe.close()  # its live openSMILE runs and threads
    (out_dir / "bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, out_dir / "bench.png")
    if "scaling" in doc:
        plot_scaling(doc["scaling"], out_dir / "bench_scaling.png")
    return doc


def format_summary(doc: dict[str, Any], out_dir: Path) -> str:
    """The summary ``synctva bench`` prints: one line per row (p50/p95/p99 ms, utterances/s), what was
    not measured and why, one line per scaling series (p50/p95 ms per point), and where the files are.

    Args:
        doc: the ``bench.json`` document (:func:`run_bench`).
        out_dir: the folder it was written to.
    """
    lines = [f"{'configuration':<28} {'backend':<16} {'mode':<10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
             f"{'utt/s':>7}"]
    for r in doc["rows"]:
        lat = r["latency_s"]
        lines.append(f"{r['config'][:28]:<28} {r['backend']:<16} {r['mode']:<10} {1e3 * lat['p50']:8.1f} "
                     f"{1e3 * lat['p95']:8.1f} {1e3 * lat['p99']:8.1f} {r['throughput_per_s']:7.2f}")
    if "triton" in doc:
        lines += format_triton(doc["triton"])
    for k, v in doc["unavailable"].items():
        lines.append(f"not measured: {k}: {v}")
    sc = doc.get("scaling")
    for name, s in (sc or {}).get("series", {}).items():
        lines.append(f"scaling {sc['config']} {sc['backend']} {name}: " + ", ".join(
            f"{p['x']:g} -> p50 {1e3 * p['latency_s']['p50']:.1f} / p95 {1e3 * p['latency_s']['p95']:.1f} ms"
            for p in s["points"]))
    png = " and " + str(Path(out_dir) / "bench_scaling.png") if sc else ""
    lines.append(f"wrote {Path(out_dir) / 'bench.json'} and {Path(out_dir) / 'bench.png'}{png}")
    return "\n".join(lines)
