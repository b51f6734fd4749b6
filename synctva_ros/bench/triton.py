"""``synctva bench --configs demo,triton``: the network stage through a Triton server under concurrent clients.

What is measured (``bench.json`` key ``triton``; docs/triton.md has the figures):

* For 1, 4 and 16 concurrent clients (threads, each with its own client and connection, as robots would have),
  ``repeats`` requests per client of the network stage (``Backend.infer_subsets`` with the pipeline's subsets) on
  the collated batches of the benchmark's real windows: **latency** p50/p95/p99 per request (seconds, from the
  client's call to its checked reply) and **throughput** (requests per second over the wall time of the
  round: what the server answered).
* The same for the **local onnxruntime backend** (one session shared by the threads, as one process would), the
  reference a robot has without a server.
* **Server batching**: requests per execution from Triton's own metrics (``nv_inference_request_success`` /
  ``nv_inference_exec_count``), i.e. how many windows the dynamic batcher put together.

The server is the local PyTriton one (:mod:`~synctva_ros.backends.triton_server`, onnxruntime on this machine's
CPU, ``threads`` intra-op threads) serving the repository written from the configuration's checkpoint; clients
use gRPC and HTTP. Feature extraction is not timed (it stays on the robot). On a machine with few cores the
clients, the server and onnxruntime share the same cores: the figures say what Triton's protocol, batching and
scheduling cost and give, not what a GPU server would do.

Errors: a server that does not start is recorded in ``unavailable`` (``triton``); only the local rows are written.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from synctva_ros.backends import BackendUnavailable, create_backend
from synctva_ros.backends.triton_backend import TritonBackend
from synctva_ros.backends.triton_process import TritonServerError, TritonServerProcess
from synctva_ros.backends.triton_repository import fusion_model_spec, write_model_repository
from synctva_ros.bench.measure import percentiles
from synctva_ros.core.batch import collate

__all__ = ["CLIENTS", "TRITON_ROW_KEYS", "concurrent_round", "server_metrics", "triton_rows", "format_triton"]

log = logging.getLogger(__name__)

#: Concurrent clients per round.
CLIENTS = (1, 4, 16)
#: Keys of each ``triton.rows`` entry of bench.json.
TRITON_ROW_KEYS = ("backend", "clients", "requests", "latency_s", "throughput_per_s", "fallbacks",
                   "requests_per_execution")


def server_metrics(server: TritonServerProcess, model: str) -> dict[str, float]:
    """Triton's counters of ``model`` (``nv_inference_*``) from the metrics endpoint; ``{}`` when unreadable."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if f'model="{model}"' in line and not line.startswith("#"):
            out[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return out


def concurrent_round(make: Any, work: list[tuple[Any, np.ndarray]], clients: int, repeats: int) -> dict[str, Any]:
    """``clients`` threads, each with ``make()``'s backend (connected and warmed up untimed), ``repeats`` requests
    of ``infer_subsets`` each, cycling through ``work`` (``(batch, keep)`` pairs), all started at once.

    Returns:
        ``clients``, ``requests``, ``latency_s`` (p50/p95/p99/mean/n, seconds per request), ``throughput_per_s``
        (requests / wall seconds of the round) and ``fallbacks`` (requests a Triton backend's fallback answered).
    """
    backends = [make() for _ in range(clients)]
    for b in backends:  # connect, verify, warm up: not timed
        b.infer_subsets(*work[0])
    lat: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        barrier.wait()
        for r in range(repeats):
            batch, keep = work[(i + r) % len(work)]
            t0 = time.perf_counter()
            backends[i].infer_subsets(batch, keep)
            lat[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = [x for xs in lat for x in xs]
    fallbacks = sum(int(getattr(b, "counters", lambda: {})().get("fallback", 0)) for b in backends)
    return {"clients": clients, "requests": len(flat), "latency_s": percentiles(flat),
            "throughput_per_s": len(flat) / wall if wall > 0 else 0.0, "fallbacks": fallbacks}


def triton_rows(pipe: Any, windows: Sequence[Any], repeats: int, work_dir: Path, *, clients: Sequence[int] = CLIENTS,
                protocols: Sequence[str] = ("grpc", "http"), threads: int = 1,
                unavailable: dict[str, str] | None = None) -> dict[str, Any]:
    """Measure the network stage locally and through a local Triton server (see the module docstring).

    Args:
        pipe: the :class:`~synctva_ros.pipeline.EmotionPipeline` of the configuration (its model and extractors).
        windows: the benchmark's windows (features extracted once, untimed).
        repeats: requests per client and round (at least 5).
        work_dir: where the model repository is written.
        clients: concurrent clients per round.
        protocols: Triton protocols to measure.
        threads: onnxruntime intra-op threads, locally and in the server.
        unavailable: gets ``triton`` -> reason when the server cannot start.

    Returns:
        ``{"rows": [...], "server": {...}, "note": str}``; rows with :data:`TRITON_ROW_KEYS`.
    """
    repeats = max(5, int(repeats))
    work = []
    for w in windows:
        feats, _ = pipe.extract(w)
        batch = collate([feats], pipe.dims, context_turns=pipe.context_turns,
                        contexts=[[]] if pipe.context_turns else None)
        work.append((batch, pipe.subsets(feats)[0]))
    cfg = pipe.cfg
    runtime = dataclasses.replace(cfg.runtime, backend="onnxruntime", quantize="none", device="cpu", threads=threads)
    local = create_backend(runtime, pipe.model, pipe.manifest)
    doc: dict[str, Any] = {"rows": [], "server": {"threads": threads, "kind": "PyTriton tritonserver, onnxruntime CPU"},
                           "note": "clients, server and onnxruntime share this machine's cores"}
    for c in clients:
        r = concurrent_round(lambda: local, work, c, repeats)
        doc["rows"].append({"backend": "onnxruntime (local)", **r, "requests_per_execution": 1.0})
        log.info("triton bench | onnxruntime local | %d clients: p50 %.1f ms", c, 1e3 * r["latency_s"]["p50"])
    repo = Path(work_dir) / "triton_repository"
    write_model_repository(pipe.model, pipe.manifest, repo, fusion_model=cfg.triton.fusion_model, overwrite=True)
    # what create_backend(backend triton) builds, built once: the spec and the fallback (shared by the clients)
    spec = fusion_model_spec(pipe.model, cfg.triton.fusion_model)
    fallback = local if cfg.triton.fallback == "onnxruntime" else create_backend(
        dataclasses.replace(runtime, backend=cfg.triton.fallback), pipe.model, pipe.manifest)
    server = TritonServerProcess(repo, threads=threads, models=[cfg.triton.fusion_model])
    try:
        server.wait_ready(300)
        for protocol in protocols:
            settings = dataclasses.replace(cfg.triton, url=server.url(protocol), protocol=protocol, timeout_s=60.0,
                                           retries=0)
            for c in clients:
                before = server_metrics(server, settings.fusion_model)
                r = concurrent_round(lambda s=settings: TritonBackend(s, spec, fallback), work, c, repeats)
                after = server_metrics(server, settings.fusion_model)
                req = after.get("nv_inference_request_success", 0) - before.get("nv_inference_request_success", 0)
                ex = after.get("nv_inference_exec_count", 0) - before.get("nv_inference_exec_count", 0)
                doc["rows"].append({"backend": f"triton {protocol}", **r,
                                    "requests_per_execution": (req / ex) if ex else None})
                log.info("triton bench | triton %s | %d clients: p50 %.1f ms, %.1f req/s", protocol, c,
                         1e3 * r["latency_s"]["p50"], r["throughput_per_s"])
    except (TritonServerError, BackendUnavailable) as exc:
        (unavailable if unavailable is not None else {})["triton"] = str(exc)
        log.warning("triton bench not measured: %s", exc)
    finally:
        server.stop()
    return doc


def format_triton(doc: dict[str, Any]) -> list[str]:
    """Summary lines of ``doc["triton"]``: backend, clients, p50/p95 ms, requests/s, requests per execution."""
    lines = [f"{'network stage':<22} {'clients':>7} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8} {'req/exec':>8}"]
    for r in doc.get("rows", []):
        per = r.get("requests_per_execution")
        lines.append(f"{r['backend']:<22} {r['clients']:>7} {1e3 * r['latency_s']['p50']:8.1f} "
                     f"{1e3 * r['latency_s']['p95']:8.1f} {r['throughput_per_s']:8.1f} "
                     f"{'-' if per is None else f'{per:.2f}':>8}")
    return lines
