"""The demo profile's streaming latency on torch fp32, onnxruntime and onnxruntime int8, interleaved (issue 12).

    OMP_NUM_THREADS=1 nice -n 5 python scripts/experiments/demo_backend_ab.py [ROUNDS] [OUT.json]

``synctva bench`` measures one backend after the other, so a background load that changes during the run favours
whichever ran in the quiet minutes. Here every round runs each backend once on the same window, in a shuffled
order (seed 0): the bench's 3 s windows (:func:`~synctva_ros.bench.inputs.realistic_windows`), the window's audio
and frames fed to the pipeline's streaming cache first (untimed, :func:`~synctva_ros.bench.measure.stream_into`,
then ``wait_ready``), then ``EmotionPipeline.predict`` timed (window close to result), as the bench's ``streaming``
rows do. One thread (``runtime.threads=1``). Prints p50/p95/p99 per backend (ms) and the load average before and
after; the numbers compare only within one run. Writes the raw latencies to OUT.json when given.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import numpy as np

from synctva_ros.backends import create_backend
from synctva_ros.bench.inputs import realistic_windows
from synctva_ros.bench.measure import percentiles, stream_into
from synctva_ros.config import load_config
from synctva_ros.pipeline import EmotionPipeline

BACKENDS = {"torch fp32": {"backend": "torch", "quantize": "none"},
            "onnxruntime": {"backend": "onnxruntime", "quantize": "none"},
            "onnxruntime int8": {"backend": "onnxruntime", "quantize": "int8"}}


def main(rounds: int = 40, out: str = "") -> None:
    cfg = load_config("demo", ["runtime.threads=1"])
    pipe = EmotionPipeline(cfg)
    backends = {k: create_backend(dataclasses.replace(cfg.runtime, **v), pipe.model, pipe.manifest)
                for k, v in BACKENDS.items()}
    windows = realistic_windows()
    cache = pipe.streaming
    lat: dict[str, list[float]] = {k: [] for k in backends}
    load0 = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    for r in range(rounds + 1):
        w = windows[r % len(windows)]
        for name in rng.permutation(list(backends)):
            pipe.backend = backends[name]
            pipe.reset_dialogue()
            stream_into(cache, w)
            cache.wait_ready(w)
            t0 = time.perf_counter()
            pipe.predict(w)
            if r:  # round 0 is the warm-up
                lat[name].append(time.perf_counter() - t0)
    load1 = os.getloadavg()[0]
    print(f"load average {load0:.2f} -> {load1:.2f} (CPUs {os.cpu_count()}); {rounds} rounds")
    for name, xs in lat.items():
        p = percentiles(xs)
        print(f"{name:<18} p50 {1e3 * p['p50']:6.1f}  p95 {1e3 * p['p95']:6.1f}  p99 {1e3 * p['p99']:6.1f} ms")
    if out:
        with open(out, "w") as f:
            json.dump({"load_average": [load0, load1], "latency_s": lat}, f, indent=1)
    pipe.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40, sys.argv[2] if len(sys.argv) > 2 else "")
