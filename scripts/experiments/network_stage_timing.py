"""The network stage per window (issue 12): three backend calls vs one pass, fp32 vs int8, on MELD dev windows.

    OMP_NUM_THREADS=1 nice -n 5 taskset -c 1 python scripts/experiments/network_stage_timing.py \\
        [CSV] [LIMIT] [OUT_JSON]

Each window of the MELD CSV (default ../shared/data/meld/dev_sent_emo.csv, all 1,109 rendered utterances
unless LIMIT) is extracted once by the demo pipeline (models/meld_minilm: all-MiniLM-L6-v2 embeddings with
the dialogue context's word pieces, openSMILE on espeak-ng speech; the session's context follows the windows
as in ``synctva evaluate``), then the network stage, i.e. what ``EmotionPipeline.fuse`` asks of the backend
(all present modalities, text alone, audio alone), runs in every configuration below, interleaved (each
window runs every configuration once, in a shuffled order, so a background load hits them alike; one thread):

* ``torch 3 calls``, ``onnxruntime 3 calls``: the pipeline before issue 12, one ``infer`` per subset on
  batches holding only that subset's modalities (the plain fusion graph for onnxruntime);
* ``torch 1 pass``, ``onnxruntime 1 pass``: ``Backend.infer_subsets`` (``SyncTVA.forward_subsets``, the
  subsets graph): the text layers once, MSDE, graphs and fusion on the 3 subset rows;
* ``int8 3 calls``, ``int8 1 pass``: the same graphs int8 dynamically quantised (the backend's settings,
  ``synctva_ros/backends/quantize.py``);
* ``int8 1 pass (full range)``, ``int8 1 pass (per tensor)``: other quantisation settings, for comparison.

Per configuration: p50/p95/mean of the network stage (ms, wall clock and this thread's CPU time); against
``torch 3 calls`` (the reference, torch fp32): max |Δ probability| of the network's distributions (every
subset) and, after the product with the face evidence (absent here) as the pipeline makes it, accuracy,
weighted and macro F1 of the window's label. The load average is printed before and after.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from synctva_ros.backends import create_backend
from synctva_ros.backends.export import cached_fusion_onnx
from synctva_ros.backends.onnx_backend import OnnxRuntimeBackend
from synctva_ros.backends.quantize import cached_quantized_onnx, quantize_int8
from synctva_ros.config import load_config, resolve_path
from synctva_ros.core.batch import UtteranceFeatures
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.evaluation.metrics import classification_metrics
from synctva_ros.evaluation.offline import dataset_windows
from synctva_ros.model.window_fusion import fuse_window
from synctva_ros.pipeline import EmotionPipeline

ROOT = Path(__file__).resolve().parents[2]
CSV = ROOT.parent / "shared" / "data" / "meld" / "dev_sent_emo.csv"
CACHE = ROOT / "out" / "issue12" / "cache"


def alone(feats: UtteranceFeatures, modality: str) -> UtteranceFeatures:
    """The pre-issue-12 pipeline's single-modality copy of ``feats``."""
    out = UtteranceFeatures(dialogue_id=feats.dialogue_id)
    setattr(out, modality, getattr(feats, modality))
    if modality == "text":
        out.sentence = feats.sentence
    return out


def three_calls(pipe: EmotionPipeline, backend, feats: UtteranceFeatures, present: list[str]):
    """Logits ``(S, C)`` of all + each present modality alone, one ``infer`` each (the old ``fuse``)."""
    rows = [backend.infer(pipe._collate(feats))[0][0]]
    rows += [backend.infer(pipe._collate(alone(feats, m)))[0][0] for m in present]
    return np.stack(rows)


def one_pass(pipe: EmotionPipeline, backend, feats: UtteranceFeatures, present: list[str]):
    """Logits ``(S, C)`` from one ``infer_subsets`` call."""
    keep = np.array([[True] * 3] + [[m == k for k in MODALITIES] for m in present], bool)
    return backend.infer_subsets(pipe._collate(feats), keep)[0][0]


def main() -> None:
    csv = Path(sys.argv[1]) if len(sys.argv) > 1 else CSV
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    out_json = Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / "out" / "issue12" / "network_stage.json"
    torch.set_num_threads(1)
    print("load average before:", os.getloadavg(), flush=True)
    cfg = load_config("demo", {"runtime.checkpoint": str(resolve_path("models/meld_minilm")),
                               "runtime.backend": "torch", "runtime.threads": 1, "runtime.cache_dir": str(CACHE)})
    pipe = EmotionPipeline(cfg)
    model, manifest = pipe.model, pipe.manifest
    plain = cached_fusion_onnx(model, manifest, cache_dir=CACHE)
    subsets = cached_fusion_onnx(model, manifest, cache_dir=CACHE, subsets=True)
    alt = {}
    for name, kw in (("full range", dict(reduce_range=False)), ("per tensor", dict(per_channel=False))):
        dst = CACHE / f"experiment_{name.replace(' ', '_')}.onnx"
        if not dst.is_file():
            quantize_int8(subsets, dst, **kw)
        alt[name] = OnnxRuntimeBackend(dst, threads=1, quantize="int8")
    torch_b = create_backend(cfg.runtime, model, manifest)
    ort_plain = OnnxRuntimeBackend(plain, threads=1)
    ort_sub = OnnxRuntimeBackend(subsets, threads=1)
    int8_plain = OnnxRuntimeBackend(cached_quantized_onnx(plain, CACHE), threads=1, quantize="int8")
    int8_sub = OnnxRuntimeBackend(cached_quantized_onnx(subsets, CACHE), threads=1, quantize="int8")
    configs = {
        "torch 3 calls": (three_calls, torch_b), "torch 1 pass": (one_pass, torch_b),
        "onnxruntime 3 calls": (three_calls, ort_plain), "onnxruntime 1 pass": (one_pass, ort_sub),
        "int8 3 calls": (three_calls, int8_plain), "int8 1 pass": (one_pass, int8_sub),
        "int8 1 pass (full range)": (one_pass, alt["full range"]),
        "int8 1 pass (per tensor)": (one_pass, alt["per tensor"]),
    }
    wall = {k: [] for k in configs}
    cpu = {k: [] for k in configs}
    dmax = {k: 0.0 for k in configs}
    preds = {k: [] for k in configs}
    truth: list[int] = []
    session = None
    rng = random.Random(0)
    names = list(configs)
    t_start = time.perf_counter()
    for i, (window, label) in enumerate(dataset_windows(csv, limit=limit or None)):
        if session is not None and getattr(window, "session", 0) != session:
            pipe.reset_dialogue()
        session = getattr(window, "session", 0)
        feats, _ = pipe.extract(window)
        present = [m for m in ("text", "audio") if getattr(feats, m) is not None]
        if len(present) < 2:  # a single modality: the pipeline makes one call, nothing to compare
            pipe.dialogue.add_window(window, feats.sentence)
            continue
        order = names[:]
        rng.shuffle(order)
        logits = {}
        for k in order:
            fn, backend = configs[k]
            t, c = time.perf_counter(), time.thread_time()
            logits[k] = fn(pipe, backend, feats, present)
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.thread_time() - c)
        ref = torch.softmax(torch.as_tensor(logits["torch 3 calls"], dtype=torch.float64), -1).numpy()
        for k, z in logits.items():
            p = torch.softmax(torch.as_tensor(z, dtype=torch.float64), -1).numpy()
            dmax[k] = max(dmax[k], float(np.abs(p - ref).max()))
            fused = fuse_window(pipe.fusion, z[0], np.zeros(3), {m: z[1 + j] for j, m in enumerate(present)}, None)
            preds[k].append(int(np.argmax(fused.probabilities)))
        truth.append(pipe.class_names.index(label))
        pipe.dialogue.add_window(window, feats.sentence)
        if (i + 1) % 100 == 0:
            print(f"{i + 1} windows, {time.perf_counter() - t_start:.0f} s", flush=True)
    print("load average after:", os.getloadavg())
    doc = {"windows": len(truth), "csv": str(csv), "limit": limit, "configs": {}}
    print(f"{len(truth)} windows with text and audio\n{'configuration':26s} {'p50':>6s} {'p95':>6s} {'mean':>6s} "
          f"{'cpu p50':>7s} {'max|dp|':>8s} {'acc':>5s} {'wF1':>5s} {'mF1':>5s}")
    for k in configs:
        w, c = 1e3 * np.asarray(wall[k]), 1e3 * np.asarray(cpu[k])
        m = classification_metrics(truth, preds[k], pipe.class_names)
        row = {"p50_ms": float(np.percentile(w, 50)), "p95_ms": float(np.percentile(w, 95)),
               "mean_ms": float(w.mean()), "cpu_p50_ms": float(np.percentile(c, 50)),
               "cpu_p95_ms": float(np.percentile(c, 95)), "max_abs_dprob_vs_torch": dmax[k],
               "accuracy": m["accuracy"], "weighted_f1": m["weighted_f1"], "macro_f1": m["macro_f1"],
               "agree_with_torch": float(np.mean(np.asarray(preds[k]) == np.asarray(preds["torch 3 calls"])))}
        doc["configs"][k] = row
        print(f"{k:26s} {row['p50_ms']:6.1f} {row['p95_ms']:6.1f} {row['mean_ms']:6.1f} {row['cpu_p50_ms']:7.1f} "
              f"{dmax[k]:8.1e} {100 * m['accuracy']:5.1f} {100 * m['weighted_f1']:5.1f} {100 * m['macro_f1']:5.1f}")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(doc, indent=2) + "\n")
    pipe.close()


if __name__ == "__main__":
    main()
