"""``synctva bench``: end-to-end latency of every available backend on realistic utterance windows.

What is measured (one process, sequential windows; docs/performance.md explains the figures):

* **End-to-end latency** from window close to :class:`~synctva_ros.emotion.EmotionResult`
  (p50/p95/p99, seconds) for each backend (torch fp32, torch bf16, onnxruntime; torch CUDA and
  tensorrt when available) in two modes: ``batch`` (every extractor runs at close,
  ``EmotionPipeline.predict`` with its streaming cache detached) and ``streaming`` (the pipeline's
  :class:`~synctva_ros.streaming.StreamingFeatureCache` is fed the window's audio and frames first,
  untimed, as the windower feeds it in the node; ``EmotionPipeline.predict`` at close then runs only
  the text encoder, the rest of the audio, the cache look-ups and the fusion).
* **Per-stage** medians (text, audio, visual, fusion), **throughput** (utterances/s = windows /
  wall time of the timed loop, sequential), **CPU use** (process CPU time / wall time; > 1 means
  several cores), **peak RSS** (``resource.getrusage``, whole process so far).
* **Fusion only**: onnxruntime vs torch eager p50 on the same collated batch.
* **FLOPs per stage** (``torch.utils.flop_counter.FlopCounterMode``; openSMILE is C++ and not
  counted) and the compute lower bound FLOPs / peak, with the peak measured here as the best
  fp32 matmul rate of torch on this machine (with the thread count in use).

Windows: a 3 s utterance of espeak-ng speech (:func:`~synctva_ros.bags.speech.render_speech`)
with camera frames made from ``skimage.data.astronaut`` (shifted a little per frame) at 15 fps.

Configurations: ``demo`` (the demo profile with the shipped ``models/meld_minilm`` when it
exists, else a development checkpoint trained for a few seconds on random features: labelled
``checkpoint: dev``), and ``paper_random`` (a RoBERTa-base-sized encoder from
``RobertaConfig()`` defaults and a ResNet-50, **random weights: latency only**, frames
streamed during the utterance; fusion at the paper profile's width).

Output: ``<out>/bench.json`` and ``<out>/bench.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .checkpoint import MANIFEST_FILE
from .config import SyncTVAConfig, load_config
from synctva_ros.core.window import TimedFrame, UtteranceWindow

__all__ = ["main", "run_bench", "realistic_windows", "measure_peak_gflops", "BENCH_SCHEMA_KEYS"]

log = logging.getLogger(__name__)

#: Top-level keys of bench.json.
BENCH_SCHEMA_KEYS = ("meta", "rows", "fusion_only", "flops", "unavailable")
ROW_KEYS = ("config", "backend", "mode", "checkpoint", "random_weights", "repeats", "latency_s", "stages_s",
            "throughput_per_s", "cpu_util", "peak_rss_mb", "lower_bound_s", "streaming")

SENTENCES = ("I can't believe you actually did that for me, thank you!",
             "Why would you tell her about the party, seriously?",
             "Well, I guess we will just have to wait and see.")


# ----------------------------------------------------------------------- inputs
def realistic_windows(n: int = 3, duration_s: float = 3.0, fps: float = 15.0, sample_rate: int = 16000,
                      t0: float = 1000.0) -> list[UtteranceWindow]:
    """``n`` utterance windows of ``duration_s`` seconds: espeak-ng speech + astronaut camera frames.

    Raises:
        synctva_ros.bags.speech.EspeakNotFoundError: espeak-ng is not installed.
    """
    from skimage.data import astronaut

    from .bags.speech import render_speech

    img = np.ascontiguousarray(astronaut())  # (512, 512, 3) uint8 RGB, has a face
    out = []
    for i in range(n):
        text = SENTENCES[i % len(SENTENCES)]
        x = render_speech(text, speaker=f"s{i}", duration_s=duration_s * 0.9, sample_rate=sample_rate)
        audio = np.zeros(int(duration_s * sample_rate), np.float32)
        lead = int(0.05 * sample_rate)
        k = min(x.size, audio.size - lead)
        audio[lead:lead + k] = x[:k]
        start = t0 + i * (duration_s + 2.0)
        frames = [TimedFrame(start + j / fps, np.roll(img, (j % 5, (j * 3) % 7), axis=(0, 1)))
                  for j in range(int(duration_s * fps))]
        out.append(UtteranceWindow(start=start, end=start + duration_s, transcript=text, frames=frames, audio=audio,
                                   sample_rate=sample_rate, audio_start=start, utterance_id=f"u{i}",
                                   dialogue_id="bench", closed_at=start + duration_s))
    return out


def measure_peak_gflops(n: int = 1024, reps: int = 8) -> float:
    """Best fp32 GFLOP/s of ``torch.mm`` on ``n x n`` matrices with torch's current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs, np.float64)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": int(a.size)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ----------------------------------------------------------------------- checkpoints
def _dev_checkpoint(directory: Path, cfg: SyncTVAConfig, extractors: dict, steps: int = 30) -> Path:
    """A checkpoint trained for a few seconds on random features (development stand-in, not a model)."""
    from .checkpoint import save_checkpoint
    from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures, collate
    from .model.synctva import SyncTVA

    dims = {m: (extractors[m].dim if extractors.get(m) is not None else 8) for m in ("text", "audio", "visual")}
    active = {m: extractors.get(m) is not None for m in dims}
    torch.manual_seed(0)
    model = SyncTVA(cfg.model, dims, active)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    c = len(cfg.model.class_names)
    model.train()
    for _ in range(steps):
        items = []
        for _b in range(8):
            u = UtteranceFeatures(label=int(rng.integers(c)))
            for m in dims:
                n = int(rng.integers(1, 12))
                setattr(u, m, ModalityFeatures(rng.standard_normal((n, dims[m])).astype(np.float32),
                                               np.sort(rng.random(n)).astype(np.float32)))
            items.append(u)
        batch = collate(items, dims, context_turns=cfg.model.context_turns)
        logits, _ = model.forward_batch(batch)
        loss = torch.nn.functional.cross_entropy(logits, batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    ids = {m: (e.identity() if e is not None else None) for m, e in extractors.items()}
    save_checkpoint(directory, model, {"name": directory.name, "extractors": ids,
                                       "training": {"data": "random features (bench development stand-in)"}})
    return directory


def _paper_random_assets(work: Path) -> tuple[Path, Path]:
    """A random RoBERTa-base (``RobertaConfig()`` defaults) with an offline BPE tokenizer, and a random ResNet-50."""
    from .features.torchvision_compat import ensure_torchvision

    ensure_torchvision()
    text_dir = work / "roberta_base_random"
    vis = work / "resnet50_random.pt"
    if not (text_dir / "model.safetensors").is_file():
        from tokenizers import ByteLevelBPETokenizer
        from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

        text_dir.mkdir(parents=True, exist_ok=True)
        bpe = ByteLevelBPETokenizer()
        corpus = list(SENTENCES) * 20 + ["the a and you me what why how this that is was were will be"] * 20
        bpe.train_from_iterator(corpus, vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        bpe.save_model(str(text_dir))
        vocab = json.loads((text_dir / "vocab.json").read_text())
        merges = [tuple(line.split()) for line in (text_dir / "merges.txt").read_text().splitlines()
                  if line and not line.startswith("#")]
        tok = RobertaTokenizerFast(vocab=vocab, merges=merges)
        tok.save_pretrained(str(text_dir))
        torch.manual_seed(0)
        RobertaModel(RobertaConfig()).eval().save_pretrained(str(text_dir))
    if not vis.is_file():
        import torchvision

        torch.manual_seed(0)
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), vis)
    return text_dir, vis


# ----------------------------------------------------------------------- runs
@dataclass
class _Setup:
    name: str
    cfg: SyncTVAConfig
    checkpoint: str
    random_weights: bool
    repeats: int


def _backends(cfg: SyncTVAConfig, pipe: Any, unavailable: dict[str, str]) -> list[tuple[str, Callable[[], Any]]]:
    from .backends import create_backend
    from .backends.tensorrt_backend import tensorrt_available

    def make(**kw: Any) -> Callable[[], Any]:
        def f() -> Any:
            rt = dataclasses.replace(cfg.runtime, **kw)
            return create_backend(rt, pipe.model, pipe.manifest, None)
        return f

    out = [("torch fp32", make(backend="torch", precision="fp32", device="cpu")),
           ("torch bf16", make(backend="torch", precision="bf16", device="cpu")),
           ("onnxruntime", make(backend="onnxruntime", precision="fp32", device="cpu"))]
    if torch.cuda.is_available():
        out.append(("torch cuda fp32", make(backend="torch", precision="fp32", device="cuda")))
        out.append(("torch cuda fp16", make(backend="torch", precision="fp16", device="cuda")))
    else:
        unavailable["cuda"] = "torch sees no CUDA GPU on this machine"
    ok, why = tensorrt_available()
    if ok:
        out.append(("tensorrt fp16", make(backend="tensorrt", precision="fp16", device="cuda")))
    else:
        unavailable["tensorrt"] = why
    return out


def _stream_into(cache: Any, window: UtteranceWindow, chunk_s: float = 0.032) -> None:
    """Feed the window's audio (in chunks) and frames to the cache in sensor-time order (untimed)."""
    cache.reset()
    sr = window.sample_rate
    n = int(chunk_s * sr)
    lead = 1.0  # audio before the utterance, as a microphone stream would have
    pre = np.zeros(int(lead * sr), np.float32)
    cache.on_audio(window.audio_start - lead, pre, sr)
    fi = 0
    frames = window.frames
    for i in range(0, window.audio.size, n):
        t = window.audio_start + i / sr
        while fi < len(frames) and frames[fi].stamp <= t:
            cache.on_frame(frames[fi].stamp, frames[fi].image)
            fi += 1
        cache.on_audio(t, window.audio[i:i + n], sr)
    for f in frames[fi:]:
        cache.on_frame(f.stamp, f.image)
    cache.on_audio(window.audio_start + window.audio.size / sr, np.zeros(int(0.3 * sr), np.float32), sr)  # late_s


def _run_mode(pipe: Any, windows: list[UtteranceWindow], repeats: int, mode: str, cache: Any) -> dict[str, Any]:
    """Time ``pipe.predict`` per window: ``batch`` with the streaming cache detached, ``streaming`` with
    ``cache`` attached and fed the window's audio and frames beforehand (untimed), as the node does."""
    lat: list[float] = []
    stages: dict[str, list[float]] = {}
    how: dict[str, int] = {}
    # one untimed warm-up
    seq = [windows[i % len(windows)] for i in range(repeats + 1)]
    cpu_total = wall_total = 0.0
    saved = pipe.streaming
    pipe.streaming = cache if mode == "streaming" else None
    try:
        for k, w in enumerate(seq):
            if mode == "streaming":
                _stream_into(cache, w)
                cache.wait_ready(w)  # fed faster than real time: let the live run catch up, untimed
                before = dict(cache.stats)
            c0, t0 = time.process_time(), time.perf_counter()
            res = pipe.predict(w)
            dt = time.perf_counter() - t0
            if k == 0:
                continue
            if mode == "streaming":
                for key, v in cache.stats.items():
                    if key.startswith(("audio_cache", "audio_context", "audio_batch", "visual_")) and v > before.get(key, 0):
                        how[key] = how.get(key, 0) + v - before.get(key, 0)
            cpu_total += time.process_time() - c0
            wall_total += dt
            lat.append(dt)
            for st, v in res.stage_s.items():
                stages.setdefault(st, []).append(v)
    finally:
        pipe.streaming = saved
    return {"latency_s": _pct(lat), "stages_s": {st: float(np.median(v)) for st, v in stages.items()},
            "throughput_per_s": len(lat) / wall_total, "cpu_util": cpu_total / wall_total,
            "peak_rss_mb": _rss_mb(), "streaming": how or None}


def _flops(pipe: Any, window: UtteranceWindow) -> dict[str, Any]:
    from torch.utils.flop_counter import FlopCounterMode

    from synctva_ros.core.batch import collate

    out: dict[str, Any] = {}
    feats, _ = pipe.extract(window)
    text = pipe.extractors.get("text")
    if text is not None and pipe.active.get("text"):
        enc = text.tokenizer([window.transcript], truncation=True, max_length=text._max_length, return_tensors="pt")
        with FlopCounterMode(display=False) as fc, torch.inference_mode():
            text.model(**enc)
        out["text"] = {"flops": int(fc.get_total_flops()), "tokens": int(enc["input_ids"].shape[1])}
    vis = pipe.extractors.get("visual")
    if vis is not None and pipe.active.get("visual") and feats.visual is not None:
        x = torch.zeros(1, 3, vis.image_size, vis.image_size)
        with FlopCounterMode(display=False) as fc, torch.inference_mode():
            vis.model(x)
        n = int(feats.visual.x.shape[0])
        out["visual"] = {"flops": int(fc.get_total_flops()) * n, "frames": n}
    out["audio"] = {"flops": None, "note": "openSMILE (C++): not counted"}
    batch = collate([feats], pipe.dims, context_turns=pipe.context_turns,
                    contexts=[[]] if pipe.context_turns else None)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        pipe.model.forward_batch(batch)
    out["fusion"] = {"flops": int(fc.get_total_flops())}
    return out


def _fusion_only(pipe: Any, window: UtteranceWindow, backends: dict[str, Any], repeats: int) -> dict[str, float]:
    from synctva_ros.core.batch import collate

    feats, _ = pipe.extract(window)
    batch = collate([feats], pipe.dims, context_turns=pipe.context_turns,
                    contexts=[[]] if pipe.context_turns else None)
    out = {}
    for name, b in backends.items():
        b.infer(batch)
        ts = []
        for _ in range(max(repeats, 20)):
            t0 = time.perf_counter()
            b.infer(batch)
            ts.append(time.perf_counter() - t0)
        out[name] = float(np.median(ts))
    return out


def _setups(args: argparse.Namespace, work: Path, repeats: int) -> list[_Setup]:
    from .config import resolve_path

    wanted = [c.strip() for c in str(getattr(args, "configs", "demo,paper_random") or "").split(",") if c.strip()]
    out = []
    if "demo" in wanted:
        cfg = load_config(args.profile, args.overrides)
        ckpt = getattr(args, "checkpoint", None)
        label = "given"
        if ckpt is None:
            try:
                ckpt = resolve_path(cfg.runtime.checkpoint)
                label = "shipped"
                if not (Path(ckpt) / MANIFEST_FILE).is_file():
                    raise FileNotFoundError(f"{ckpt} has no manifest.json yet")
            except FileNotFoundError as exc:
                from .features.registry import build_extractors

                log.warning("demo checkpoint not usable (%s): using a development checkpoint trained on random "
                            "features (latency only)", exc)

                ckpt = work / "dev_demo_checkpoint"
                if not (ckpt / MANIFEST_FILE).is_file():
                    _dev_checkpoint(ckpt, cfg, build_extractors(cfg.features))
                label = "dev"
        cfg.runtime.checkpoint = str(ckpt)
        out.append(_Setup(f"{cfg.runtime.profile}", cfg, f"{label}: {ckpt}", label == "dev", repeats))
    if "paper_random" in wanted:
        text_dir, vis = _paper_random_assets(work)
        cfg = load_config("paper", [f"features.text_encoder={text_dir}", f"features.visual_weights={vis}",
                                    "runtime.backend=torch", "runtime.device=cpu", "runtime.precision=fp32"])
        from .features.registry import build_extractors

        ckpt = work / "paper_random_checkpoint"
        if not (ckpt / MANIFEST_FILE).is_file():
            _dev_checkpoint(ckpt, cfg, build_extractors(cfg.features), steps=1)
        cfg.runtime.checkpoint = str(ckpt)
        out.append(_Setup("paper_random (RoBERTa-base + ResNet-50, random weights: latency only)", cfg,
                          f"random: {ckpt}", True, max(2, repeats // 5)))
    return out


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described in the module docstring; returns the JSON document."""
    from .backends import BackendUnavailable
    from .pipeline import EmotionPipeline
    from .streaming import StreamingFeatureCache

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    from .backends.engine_cache import cache_root

    work = cache_root(None) / "bench"
    work.mkdir(parents=True, exist_ok=True)
    repeats = max(1, int(args.repeats))
    windows = realistic_windows()
    peak = measure_peak_gflops()
    doc: dict[str, Any] = {
        "meta": {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.machine(),
                 "processor": platform.processor(), "cpu_count": os.cpu_count(),
                 "torch_threads": torch.get_num_threads(),
                 "python": platform.python_version(), "torch": torch.__version__,
                 "peak_gflops_fp32_measured": peak,
                 "peak_note": "best torch.mm 1024x1024 fp32 rate here with torch_threads threads",
                 "window_s": windows[0].duration, "frames_per_window": len(windows[0].frames),
                 "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "rows": [], "fusion_only": [], "flops": {}, "unavailable": {}}
    try:
        import onnxruntime

        doc["meta"]["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    for setup in _setups(args, work, repeats):
        log.info("bench configuration %s (%s)", setup.name, setup.checkpoint)
        pipe = EmotionPipeline(setup.cfg)
        flops = _flops(pipe, windows[0])
        doc["flops"][setup.name] = flops
        cache = pipe.streaming or StreamingFeatureCache(
            {m: e for m, e in pipe.extractors.items() if pipe.active[m] and m in ("audio", "visual")})
        built: dict[str, Any] = {}
        for bname, make in _backends(setup.cfg, pipe, doc["unavailable"]):
            try:
                backend = make()
            except BackendUnavailable as exc:
                doc["unavailable"][bname] = str(exc)
                continue
            if hasattr(backend, "wait_ready"):
                backend.wait_ready(600)
            built[bname] = backend
            pipe.backend = backend  # backend_name follows it
            for mode in ("batch", "streaming"):
                r = _run_mode(pipe, windows, setup.repeats, mode, cache)
                lb = {s: (flops[s]["flops"] / (peak * 1e9) if flops.get(s, {}).get("flops") else None)
                      for s in ("text", "visual", "fusion")}
                doc["rows"].append({"config": setup.name, "backend": bname, "mode": mode,
                                    "checkpoint": setup.checkpoint, "random_weights": setup.random_weights,
                                    "repeats": setup.repeats, **r, "lower_bound_s": lb})
                log.info("%s | %s | %s: p50 %.1f ms", setup.name, bname, mode, 1e3 * r["latency_s"]["p50"])
        fo = _fusion_only(pipe, windows[0], {k: v for k, v in built.items() if k in ("torch fp32", "onnxruntime")},
                          repeats)
        doc["fusion_only"].append({"config": setup.name, "p50_s": fo})
        cache.close()
        pipe.close()  # its live openSMILE runs and threads
    (out_dir / "bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, out_dir / "bench.png")
    return doc


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Bar chart: end-to-end p50 (whisker to p95) per configuration/backend/mode, stages stacked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["rows"]
    labels = [f"{r['config'].split(' ')[0]}\n{r['backend']}\n{r['mode']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 5))
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for stage, colour in (("text", "#4c72b0"), ("audio", "#55a868"), ("visual", "#c44e52"), ("fusion", "#8172b2")):
        v = np.array([1e3 * r["stages_s"].get(stage, 0.0) for r in rows])
        ax.bar(x, v, bottom=bottom, color=colour, label=f"{stage} (median)", width=0.6)
        bottom += v
    p50 = np.array([1e3 * r["latency_s"]["p50"] for r in rows])
    p95 = np.array([1e3 * r["latency_s"]["p95"] for r in rows])
    ax.errorbar(x, p50, yerr=[np.zeros_like(p50), np.maximum(p95 - p50, 0)], fmt="k_", capsize=4,
                label="end-to-end p50 (bar: to p95)")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("ms from window close to result")
    ax.set_title("synctva bench (CPU; random-weight rows: latency only)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args: argparse.Namespace) -> int:
    """Entry point of ``synctva bench`` (see :func:`run_bench`); prints a summary table; returns 0."""
    doc = run_bench(args)
    print(f"{'configuration':<28} {'backend':<16} {'mode':<10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'utt/s':>7}")
    for r in doc["rows"]:
        lat = r["latency_s"]
        print(f"{r['config'][:28]:<28} {r['backend']:<16} {r['mode']:<10} {1e3 * lat['p50']:8.1f} "
              f"{1e3 * lat['p95']:8.1f} {1e3 * lat['p99']:8.1f} {r['throughput_per_s']:7.2f}")
    for k, v in doc["unavailable"].items():
        print(f"not measured: {k}: {v}")
    print(f"wrote {Path(args.out) / 'bench.json'} and {Path(args.out) / 'bench.png'}")
    return 0
