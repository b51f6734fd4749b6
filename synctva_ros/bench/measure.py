"""What ``synctva bench`` measures on one pipeline: end-to-end latency per mode, FLOPs, fusion alone.

* :func:`run_mode`: latency from window close to :class:`~synctva_ros.emotion.EmotionResult`
  (``EmotionPipeline.predict``) in ``batch`` mode (every extractor runs at close, streaming cache
  detached) or ``streaming`` mode (the :class:`~synctva_ros.streaming.StreamingFeatureCache` is fed
  the window's audio and frames first, untimed, as the windower feeds it in the node); per-stage
  medians, throughput, CPU use and peak RSS.
* :func:`fusion_only`: the backends' network stage (``infer_subsets``) alone on one collated batch.
* :func:`backend_factories`: the backends worth measuring on this machine (CUDA and TensorRT only
  where available; the others are recorded with the reason).
"""

from __future__ import annotations

import dataclasses
import resource
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from synctva_ros.backends import create_backend
from synctva_ros.backends.tensorrt_backend import tensorrt_available
from synctva_ros.config import SyncTVAConfig
from synctva_ros.core.batch import collate
from synctva_ros.core.window import UtteranceWindow

__all__ = ["backend_factories", "select_backends", "stream_into", "run_mode", "cycled", "fusion_only", "percentiles",
           "rss_mb"]


def percentiles(xs: list[float]) -> dict[str, float]:
    """``{"p50", "p95", "p99", "mean", "n"}`` of ``xs`` (same unit as ``xs``)."""
    a = np.asarray(xs, np.float64)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": int(a.size)}


def rss_mb() -> float:
    """Peak resident set size of this process so far (MiB; ``resource.getrusage``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def backend_factories(cfg: SyncTVAConfig, pipe: Any,
                      unavailable: dict[str, str]) -> list[tuple[str, Callable[[], Any]]]:
    """``(name, make)`` of each backend to measure for ``pipe``'s model; ``make()`` builds it and serves ``pipe``'s
    text extractor's encoder on the same backend (``EmotionPipeline.serve_text``).

    Always torch fp32, torch bf16, onnxruntime and onnxruntime int8 (``runtime.quantize: int8``) on the CPU;
    torch CUDA fp32/fp16 and fp32 replayed from CUDA graphs (``runtime.cuda_graphs``) when torch sees a GPU;
    onnxruntime CUDA when torch sees a GPU and this onnxruntime build
    has the ``CUDAExecutionProvider`` (the ``onnxruntime-gpu`` wheel); TensorRT fp16 when
    :func:`~synctva_ros.backends.tensorrt_backend.tensorrt_available`.
    What is left out is added to ``unavailable`` (name -> reason).

    Args:
        cfg: the configuration (its ``runtime`` section is copied with backend/precision/device set).
        pipe: the :class:`~synctva_ros.pipeline.EmotionPipeline` (its ``model`` and ``manifest``).
        unavailable: updated in place.
    """
    def make(**kw: Any) -> Callable[[], Any]:
        def f() -> Any:
            rt = dataclasses.replace(cfg.runtime, **{"cuda_graphs": False, **kw})
            backend = create_backend(rt, pipe.model, pipe.manifest)
            pipe.serve_encoders(rt)  # the text and visual encoders on the same backend (as the pipeline at start)
            return backend
        return f

    out = [("torch fp32", make(backend="torch", precision="fp32", device="cpu", quantize="none")),
           ("torch bf16", make(backend="torch", precision="bf16", device="cpu", quantize="none")),
           ("onnxruntime", make(backend="onnxruntime", precision="fp32", device="cpu", quantize="none")),
           ("onnxruntime int8", make(backend="onnxruntime", precision="fp32", device="cpu", quantize="int8"))]
    if torch.cuda.is_available():
        out.append(("torch cuda fp32", make(backend="torch", precision="fp32", device="cuda", quantize="none")))
        out.append(("torch cuda fp16", make(backend="torch", precision="fp16", device="cuda", quantize="none")))
        out.append(("torch cuda graphs", make(backend="torch", precision="fp32", device="cuda", quantize="none",
                                              cuda_graphs=True)))
        providers = _ort_providers()
        if "CUDAExecutionProvider" in providers:
            out.append(("onnxruntime cuda", make(backend="onnxruntime", precision="fp32", device="cuda",
                                                 quantize="none")))
        else:
            unavailable["onnxruntime cuda"] = (f"this onnxruntime has no CUDAExecutionProvider (has: "
                                               f"{', '.join(providers) or 'onnxruntime not installed'}); "
                                               f"it needs the onnxruntime-gpu wheel")
    else:
        unavailable["cuda"] = "torch sees no CUDA GPU on this machine"
    ok, why = tensorrt_available()
    if ok:
        out.append(("tensorrt fp16", make(backend="tensorrt", precision="fp16", device="cuda", quantize="none")))
    else:
        unavailable["tensorrt"] = why
    return out


def _ort_providers() -> list[str]:
    """The execution providers of the installed onnxruntime (``[]`` when it is not installed)."""
    try:
        import onnxruntime as ort  # deferred: optional dependency
    except ImportError:
        return []
    return list(ort.get_available_providers())


def select_backends(factories: list[tuple[str, Callable[[], Any]]], wanted: Sequence[str] | None,
                    unavailable: dict[str, str]) -> list[tuple[str, Callable[[], Any]]]:
    """The factories named in ``wanted`` (all when ``wanted`` is empty or ``None``), in their own order.

    A wanted name that is neither built here nor already in ``unavailable`` is recorded there as not a backend of
    this machine (``synctva bench --backends`` with a typo or a GPU row on a CPU machine says so in the summary).

    Args:
        factories: :func:`backend_factories`' answer.
        wanted: row names such as ``"torch cuda fp16"`` (surrounding blanks ignored).
        unavailable: updated in place.
    """
    names = [w.strip() for w in (wanted or ()) if w.strip()]
    if not names:
        return factories
    known = {n for n, _ in factories}
    for n in names:
        if n not in known and not any(k in n for k in unavailable):
            unavailable[n] = f"asked for with --backends, not a backend of this machine (here: {', '.join(known)})"
    return [(n, f) for n, f in factories if n in names]


def stream_into(cache: Any, window: UtteranceWindow, chunk_s: float = 0.032, paced: bool = False,
                timeout_s: float = 30.0) -> None:
    """Feed the window's audio (in chunks) and frames to the cache in sensor-time order (untimed).

    The cache is reset first, then gets 1 s of silence before the window (a microphone stream has
    audio before an utterance), the window's audio in ``chunk_s`` chunks with each frame before the
    chunk that follows it, the final transcript (``on_transcript``: the text stage starts, as with a
    speech-to-text whose final result comes at the end of the speech), and 0.3 s of silence after (the
    node's ``windowing.late_s``).

    Args:
        cache: a :class:`~synctva_ros.streaming.StreamingFeatureCache`.
        window: the utterance window.
        chunk_s: audio chunk length (seconds).
        paced: hand over each frame only once the cache's frame queue is empty (``describe()["queued_frames"]``,
            polled every 1 ms for at most ``timeout_s`` seconds per frame): a live camera arrives no faster than
            the stage keeps up, so none is dropped (:mod:`~synctva_ros.bench.scaling`).
        timeout_s: see ``paced``.
    """
    cache.reset()
    sr = window.sample_rate
    n = int(chunk_s * sr)
    lead = 1.0  # audio before the utterance, as a microphone stream would have
    pre = np.zeros(int(lead * sr), np.float32)
    cache.on_audio(window.audio_start - lead, pre, sr)

    def frame(f: Any) -> None:
        cache.on_frame(f.stamp, f.image)
        if paced:
            deadline = time.monotonic() + timeout_s
            while cache.describe()["queued_frames"] and time.monotonic() < deadline:
                time.sleep(0.001)

    fi = 0
    frames = window.frames
    for i in range(0, window.audio.size, n):
        t = window.audio_start + i / sr
        while fi < len(frames) and frames[fi].stamp <= t:
            frame(frames[fi])
            fi += 1
        cache.on_audio(t, window.audio[i:i + n], sr)
    for f in frames[fi:]:
        frame(f)
    if window.transcript and hasattr(cache, "on_transcript"):  # the final transcript at the end of the speech,
        cache.on_transcript(window)  # late_s before the close (as the demo bag's); its text stage starts
    cache.on_audio(window.audio_start + window.audio.size / sr, np.zeros(int(0.3 * sr), np.float32), sr)  # late_s


def cycled(windows: Sequence[UtteranceWindow], n: int) -> list[UtteranceWindow]:
    """The first ``n`` windows of ``windows`` repeated in order: how :func:`run_mode` feeds them (one dialogue, so a
    window reads the ones before it as context). Raises ``ZeroDivisionError`` for empty ``windows`` and ``n > 0``."""
    return [windows[i % len(windows)] for i in range(n)]


def run_mode(pipe: Any, windows: list[UtteranceWindow], repeats: int, mode: str, cache: Any) -> dict[str, Any]:
    """Time ``pipe.predict`` per window: ``batch`` with the streaming cache detached, ``streaming`` with
    ``cache`` attached and fed the window's audio and frames beforehand (untimed), as the node does.

    The windows are cycled for ``repeats + 1`` predictions; the first is an untimed warm-up.

    Args:
        pipe: the :class:`~synctva_ros.pipeline.EmotionPipeline` (its ``backend`` already set).
        windows: utterance windows (:func:`~synctva_ros.bench.inputs.realistic_windows`).
        repeats: timed predictions.
        mode: ``batch`` or ``streaming``.
        cache: the :class:`~synctva_ros.streaming.StreamingFeatureCache` used in ``streaming`` mode.

    Returns:
        ``latency_s`` (:func:`percentiles`, seconds), ``stages_s`` (median seconds per stage),
        ``throughput_per_s`` (windows / timed wall time, sequential), ``cpu_util`` (process CPU time /
        wall time), ``peak_rss_mb`` (MiB) and ``streaming`` (cache outcomes counted over the timed
        windows, ``None`` in batch mode).
    """
    lat: list[float] = []
    stages: dict[str, list[float]] = {}
    how: dict[str, int] = {}
    # one untimed warm-up
    seq = cycled(windows, repeats + 1)
    cpu_total = wall_total = 0.0
    saved = pipe.streaming
    pipe.streaming = cache if mode == "streaming" else None
    try:
        for k, w in enumerate(seq):
            if mode == "streaming":
                stream_into(cache, w)
                cache.wait_ready(w)  # fed faster than real time: let the live run catch up, untimed
                before = dict(cache.stats)
            c0, t0 = time.process_time(), time.perf_counter()
            res = pipe.predict(w)
            dt = time.perf_counter() - t0
            if k == 0:
                continue
            if mode == "streaming":
                for key, v in cache.stats.items():
                    if key.startswith(("audio_cache", "audio_context", "audio_batch", "visual_", "text_prefetch_")) \
                            and v > before.get(key, 0):
                        how[key] = how.get(key, 0) + v - before.get(key, 0)
            cpu_total += time.process_time() - c0
            wall_total += dt
            lat.append(dt)
            for st, v in res.stage_s.items():
                stages.setdefault(st, []).append(v)
    finally:
        pipe.streaming = saved
    return {"latency_s": percentiles(lat), "stages_s": {st: float(np.median(v)) for st, v in stages.items()},
            "throughput_per_s": len(lat) / wall_total, "cpu_util": cpu_total / wall_total,
            "peak_rss_mb": rss_mb(), "streaming": how or None}


def fusion_only(pipe: Any, window: UtteranceWindow, backends: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds of the network stage on ``window``'s collated batch, per backend: ``backend.infer_subsets``
    for the pipeline's subsets (``EmotionPipeline.subsets``: all modalities, text alone, audio alone), as
    ``EmotionPipeline.fuse`` calls it.

    Args:
        pipe: the pipeline (extracts the window's features once).
        window: the utterance window.
        backends: name -> built backend.
        repeats: timed calls per backend (at least 20), after one warm-up.
    """
    feats, _ = pipe.extract(window)
    batch = collate([feats], pipe.dims, context_turns=pipe.context_turns,
                    contexts=[[]] if pipe.context_turns else None)
    keep, _ = pipe.subsets(feats)
    out = {}
    for name, b in backends.items():
        b.infer_subsets(batch, keep)
        ts = []
        for _ in range(max(repeats, 20)):
            t0 = time.perf_counter()
            b.infer_subsets(batch, keep)
            ts.append(time.perf_counter() - t0)
        out[name] = float(np.median(ts))
    return out


#: The backend name (``backend.name``) each row measures: a row whose backend fell back to another at start (an
#: onnxruntime that could not load, CUDA graphs that did not capture) is not measured under the wrong name.
ROW_BACKENDS = {"torch fp32": "torch", "torch bf16": "torch", "onnxruntime": "onnxruntime",
                "onnxruntime int8": "onnxruntime-int8", "torch cuda fp32": "torch", "torch cuda fp16": "torch",
                "torch cuda graphs": "torch-cudagraph", "onnxruntime cuda": "onnxruntime", "tensorrt fp16": "tensorrt"}


def ready_as_named(backend: Any, name: str, unavailable: dict[str, str], timeout_s: float = 600.0) -> bool:
    """Wait for a background-built backend (TensorRT) and say whether the row ``name`` would measure it.

    A :class:`~synctva_ros.backends.switching.SwitchingBackend` whose engine build failed (or did not finish
    within ``timeout_s`` seconds) keeps serving its onnxruntime/torch fallback; measuring that under the name
    "tensorrt fp16" would be a false figure, so the row is left out and ``unavailable[name]`` says why. Likewise a
    backend that is not the one the row names (:data:`ROW_BACKENDS`: ``create_backend`` fell back to torch, CUDA
    graphs did not start) and an "onnxruntime cuda" session without the CUDA provider.

    Returns:
        True when ``backend`` answers as the backend the row is named after.
    """
    if hasattr(backend, "wait_ready"):
        backend.wait_ready(timeout_s)
        if getattr(backend, "primary", None) is None:
            why = backend.error or f"not built within {timeout_s:.0f} s"
            unavailable[name] = (f"{backend.primary_name} build failed ({why}); it would have served "
                                 f"{backend.fallback.name}")
            return False
    want = ROW_BACKENDS.get(name)
    got = getattr(backend, "primary_name", None) or getattr(backend, "name", "")  # a switching one: its built engine
    if want is not None and got != want:
        unavailable[name] = f"{want} did not start (see the log); it would have served {got}"
        return False
    if name == "onnxruntime cuda" and "CUDAExecutionProvider" not in getattr(backend, "providers", []):
        unavailable[name] = (f"the session runs on {', '.join(getattr(backend, 'providers', [])) or '?'}, "
                             "not CUDAExecutionProvider")
        return False
    return True

