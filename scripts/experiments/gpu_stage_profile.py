"""Where the GPU time of one window goes (issue 12, "<= 10 ms on a GPU"): the paper_random pipeline on CUDA.

Run by scripts/experiments/gpu_bench.sh's environment on a lent GPU machine:
    python3 scripts/experiments/gpu_stage_profile.py OUT_DIR [DEVICE]   (DEVICE cpu: a dry run of the script)
Prints and writes ``OUT_DIR/profile.json``:

* the network stage (``TorchBackend.infer_subsets``, the call ``EmotionPipeline.fuse`` makes) and the text encoder,
  each timed eagerly (CUDA-synchronised wall time, median of 50 after 10 warm-ups);
* a ``torch.profiler`` table of the network stage: the top operators by self CPU time and by self CUDA time, the
  number of CUDA kernels launched per call, and the GPU's busy time against the wall time;
* the network stage captured once as a CUDA graph (``torch.cuda.CUDAGraph``) and replayed, when capture succeeds
  (it fails where the forward synchronises with the host): how much of the wall time is launch overhead.
Random weights (paper_random: latency only).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from synctva_ros.backends.engine_cache import cache_root
from synctva_ros.backends.torch_backend import TorchBackend
from synctva_ros.bench.inputs import realistic_windows
from synctva_ros.bench.setups import bench_setups
from synctva_ros.pipeline import EmotionPipeline


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, n: int = 50, warm: int = 10) -> float:
    """Median wall seconds of ``fn()`` with CUDA synchronised before and after each call."""
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(n):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(out: Path, device: str = "cuda") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (setup,) = bench_setups(["paper_random"], cache_root(None) / "bench", 10,
                            overrides=[f"runtime.device={device}", "features.face_crop=false"])
    pipe = EmotionPipeline(setup.cfg)
    window = realistic_windows()[0]
    feats, _ = pipe.extract(window)
    keep, _ = pipe.subsets(feats)
    batch = pipe._collate(feats)
    cuda = device.startswith("cuda")
    doc: dict = {"gpu": torch.cuda.get_device_name(0) if cuda else None, "torch": torch.__version__,
                 "subsets": int(len(keep))}
    for precision in ("fp32", "fp16") if cuda else ("fp32",):
        be = TorchBackend(pipe.model, device=device, precision=precision)
        doc[f"network_{precision}_ms"] = 1e3 * timed(lambda: be.infer_subsets(batch, keep))
    be = TorchBackend(pipe.model, device=device)
    text = pipe.extractors["text"]
    doc["text_encoder_ms"] = 1e3 * timed(lambda: text(window), n=20, warm=3)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for _ in range(10):
            be.infer_subsets(batch, keep)
        _sync()
    events = prof.key_averages()
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    doc["cuda_kernels_per_call"] = len(kernels) / 10
    doc["gpu_busy_ms_per_call"] = sum(e.device_time for e in kernels) / 1e3 / 10
    doc["top_self_cpu"] = [(e.key, e.count // 10, round(e.self_cpu_time_total / 1e3 / 10, 3))
                           for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:20]]
    doc["top_self_cuda"] = [(e.key, e.count // 10, round(e.self_device_time_total / 1e3 / 10, 3))
                            for e in sorted(events, key=lambda e: -e.self_device_time_total)[:12]]
    # the network as one CUDA graph: static inputs, replayed
    b = batch.to(device)
    k = torch.as_tensor(np.asarray(keep, bool).reshape(-1, 3), device=device)
    args = (k, b.text, b.text_mask, b.text_time, b.audio, b.audio_mask, b.audio_time, b.visual, b.visual_mask,
            b.visual_time, b.context, b.context_mask, b.text_prefix, b.text_prefix_mask)
    try:
        if not cuda:
            raise RuntimeError("no CUDA device: no graph to capture")
        with torch.inference_mode():
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    be.model.forward_subsets(*args)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                static = be.model.forward_subsets(*args)
            doc["cuda_graph_replay_ms"] = 1e3 * timed(g.replay)
            eager = be.model.forward_subsets(*args)
            g.replay()
            doc["cuda_graph_max_abs_diff"] = float((static[0] - eager[0]).abs().max())
    except Exception as exc:  # noqa: BLE001 - recorded: where capture fails is the finding
        doc["cuda_graph_error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
    (out / "profile.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    pipe.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/gpu_profile"), sys.argv[2] if len(sys.argv) > 2 else "cuda")
