"""Where the time from window close to result goes on a GPU (issue 12, "<= 10 ms"): paper_random on CUDA with the
pipeline's defaults (network and text encoder replayed from CUDA graphs).

Run by scripts/experiments/gpu_bench.sh's environment on a lent GPU machine:
    python3 scripts/experiments/gpu_close_profile.py OUT_DIR [DEVICE]   (DEVICE cpu: a dry run of the script)
Prints and writes ``OUT_DIR/close_profile.json``: for three ways the window reaches the close,

* ``batch``: no streaming cache (every extractor runs at close; only the text and network stages are comparable),
* ``streaming``: the bench's streaming rows (the cache works in the caller's thread; with ``features.streaming_text``
  the text stage runs at the transcript, before the close),
* ``streaming_idle``: the same with the GPU synchronised before the close (no frame work still queued on it),

the median wall time of ``predict`` and of its stages, and of the text stage's parts: tokenising
(``encode_window`` outside the runner), the runner's copies into the graph's inputs, the replay (synchronised),
the copy of the states back to the host (timed on an extra replay, so the text stage's figure includes it twice).
A ``torch.profiler`` table of the closes in ``streaming`` mode
(top self-CPU operators; CUDA kernels per close; the GPU's busy time) follows. Random weights: latency only.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from synctva_ros.backends.engine_cache import cache_root
from synctva_ros.bench.inputs import realistic_windows
from synctva_ros.bench.measure import stream_into
from synctva_ros.bench.setups import bench_setups
from synctva_ros.pipeline import EmotionPipeline
from synctva_ros.streaming import StreamingFeatureCache


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class TimedRunner:
    """Wraps the text extractor's runner; records the seconds of its parts per call (CUDA-synchronised)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.parts: dict[str, list[float]] = {"runner_total": []}

    def __call__(self, enc: Any) -> torch.Tensor:
        t0 = time.perf_counter()
        graphs = getattr(self.runner, "_graphs", None)
        out = self.runner(enc)
        self.parts["runner_total"].append(time.perf_counter() - t0)
        if graphs:  # the replay alone, on the graph this call used (same shape again)
            b, t = enc["input_ids"].shape
            key = (int(b), self.runner.padded_length(int(t)))
            entry = graphs.get(key)
            if entry:
                graph, static, gout = entry
                _sync()
                t1 = time.perf_counter()
                for n in static:
                    static[n][:, :t].copy_(enc[n] if n in enc else torch.zeros_like(enc["input_ids"]))
                _sync()
                t2 = time.perf_counter()
                graph.replay()
                _sync()
                t3 = time.perf_counter()
                gout[:, :t].float().cpu()
                t4 = time.perf_counter()
                for k, v in (("copy_in", t2 - t1), ("replay", t3 - t2), ("copy_out", t4 - t3)):
                    self.parts.setdefault(k, []).append(v)
        return out


def _med(xs: list[float]) -> float:
    return round(1e3 * statistics.median(xs), 3) if xs else float("nan")


def run(pipe: EmotionPipeline, cache: StreamingFeatureCache, windows: list, mode: str, n: int,
        prof: Any = None) -> dict[str, Any]:
    text = pipe.extractors["text"]
    timed = TimedRunner(text.runner) if text.runner is not None else None
    saved_runner = text.runner
    pipe.streaming = None if mode == "batch" else cache
    lat: list[float] = []
    stages: dict[str, list[float]] = {}
    try:
        for k in range(n + 1):
            w = windows[k % len(windows)]
            if mode != "batch":
                stream_into(cache, w)
                cache.wait_ready(w)
                if mode == "streaming_idle":
                    _sync()
            text.runner = timed if (timed and k > 0 and prof is None) else saved_runner
            if prof is not None and k > 0:
                prof.step()
            t0 = time.perf_counter()
            res = pipe.predict(w)
            dt = time.perf_counter() - t0
            if k == 0:
                continue
            lat.append(dt)
            for s, v in res.stage_s.items():
                stages.setdefault(s, []).append(v)
    finally:
        text.runner = saved_runner
        pipe.streaming = None
    out = {"p50_ms": _med(lat), "p95_ms": round(1e3 * float(np.percentile(lat, 95)), 3),
           "stages_ms": {s: _med(v) for s, v in stages.items()}}
    if timed:
        out["text_runner_ms"] = {k: _med(v) for k, v in timed.parts.items()}
    return out


def main(out: Path, device: str = "cuda", n: int = 30) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (setup,) = bench_setups(["paper_random"], cache_root(None) / "bench", 10,
                            overrides=[f"runtime.device={device}", "features.face_crop=false"])
    pipe = EmotionPipeline(setup.cfg)
    cache = pipe.streaming or StreamingFeatureCache(  # as synctva bench: the pipeline's own (face stage) if any
        {m: e for m, e in pipe.extractors.items() if pipe.active[m] and m in ("audio", "visual")},
        audio_mode=setup.cfg.features.streaming_audio)
    windows = realistic_windows()
    cuda = device.startswith("cuda")
    doc: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0) if cuda else None, "torch": torch.__version__,
                           "backend": pipe.backend_name, "text_runner": getattr(pipe.extractors["text"].runner,
                                                                                "name", "torch")}
    for mode in ("batch", "streaming", "streaming_idle"):
        doc[mode] = run(pipe, cache, windows, mode, n)
        print(mode, json.dumps(doc[mode]), flush=True)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        run(pipe, cache, windows, "streaming", 10, prof=prof)
    events = prof.key_averages()
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    doc["profile_note"] = "10 closes plus the streaming work around them (all threads)"
    doc["cuda_kernels"] = len(kernels)
    doc["gpu_busy_ms"] = sum(e.device_time for e in kernels) / 1e3
    doc["top_self_cpu"] = [(e.key, e.count, round(e.self_cpu_time_total / 1e3, 3))
                           for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:25]]
    doc["top_self_cuda"] = [(e.key, e.count, round(e.self_device_time_total / 1e3, 3))
                            for e in sorted(events, key=lambda e: -e.self_device_time_total)[:12]]
    (out / "close_profile.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: doc[k] for k in ("cuda_kernels", "gpu_busy_ms", "top_self_cpu")}, indent=1))
    cache.close()
    pipe.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/gpu_close_profile"),
         sys.argv[2] if len(sys.argv) > 2 else "cuda", int(sys.argv[3]) if len(sys.argv) > 3 else 30)
