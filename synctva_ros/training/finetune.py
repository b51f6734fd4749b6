"""Train Sync-TVA with the text encoder's top K layers fine-tuned (``model.text_top_layers = K``).

Two steps:

1. :func:`build_text_layer_cache`: a feature cache whose text nodes are the encoder's
   layer-``features.text_layer`` states, made from an existing cache of the same split: the
   (expensive, about 0.2 s per utterance) audio nodes are copied, only the text is re-encoded
   (MiniLM: about 10 ms per utterance). Same format and key rule as
   :mod:`synctva_ros.datasets.cache`, so :func:`~synctva_ros.training.train.load_split_cache`
   finds it for the configured extractors.
2. :func:`finetune`: the training loop of :func:`~synctva_ros.training.train.train` (same
   seeding, loss, metrics, model selection by validation weighted F1) with the top layers built
   from the pretrained encoder (:func:`~synctva_ros.checkpoint.text_top_base.build_text_top`) and trained
   with their own, lower learning rate; the checkpoint stores them as deltas
   (:func:`~synctva_ros.checkpoint.text_top_deltas.save_text_top_checkpoint`). With ``text_top_layers = 0``
   it trains the frozen-encoder model the same way (for comparisons).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safetensors.numpy import load_file, save_file

from synctva_ros.checkpoint import build_text_top, save_checkpoint, save_text_top_checkpoint
from synctva_ros.config import FeaturesConfig, SyncTVAConfig
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.datasets.cache import CACHE_FORMAT, cache_key, cache_stem
from synctva_ros.evaluation.metrics import classification_metrics
from synctva_ros.features.text import TextEncoder
from synctva_ros.model.losses import build_loss
from synctva_ros.model.synctva import SyncTVA
from synctva_ros.training.config import TrainingConfig
from synctva_ros.training.train import evaluate_model, prepare_data, seed_everything, train_one_epoch

__all__ = ["build_text_layer_cache", "finetune"]

log = logging.getLogger(__name__)


def build_text_layer_cache(source: str | os.PathLike[str], features: FeaturesConfig,
                           out_dir: str | os.PathLike[str], encoder: Any = None) -> Path:
    """Copy a feature cache with its text re-encoded at ``features.text_layer``; returns the ``.safetensors`` path.

    Args:
        source: an existing cache (``.safetensors``/``.json`` path or stem) of the same split,
            built with the same text encoder name and ``max_tokens``.
        features: configuration of the new text extractor (``text_encoder``, ``text_max_tokens``,
            ``text_layer``).
        out_dir: where to write (name ``{dataset}_{split}_{key}`` with the new key).
        encoder: a pre-built :class:`~synctva_ros.features.text.TextEncoder` (default: from ``features``).

    Raises:
        FileNotFoundError: missing source; ValueError: the source is not a cache or was built
        with another text encoder / ``max_tokens``.
    """
    p = Path(source)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    header = json.loads(stem.with_suffix(".json").read_text())
    if header.get("format") != CACHE_FORMAT:
        raise ValueError(f"{stem} is not a {CACHE_FORMAT} cache")
    enc = encoder or TextEncoder(features.text_encoder, max_tokens=features.text_max_tokens,
                                 layer=features.text_layer)
    old = (header.get("extractors") or {}).get("text") or {}
    new_ident = enc.identity()
    for k in ("name", "weights_sha256", "max_tokens"):
        if old and old.get(k) != new_ident.get(k):
            raise ValueError(f"{stem}: text {k} {old.get(k)!r} differs from the configured {new_ident.get(k)!r}")
    extractors = {**header["extractors"], "text": new_ident}
    key = cache_key(extractors, header.get("speech"))
    out = cache_stem(out_dir, header["dataset"], header["split"], key)
    if out.with_suffix(".safetensors").exists() and out.with_suffix(".json").exists():
        return out.with_suffix(".safetensors")
    arr = load_file(str(stem.with_suffix(".safetensors")))
    rows = [dict(r) for r in header["utterances"]]
    t0 = time.perf_counter()
    enc_out = enc.encode_texts([r["text"] for r in rows])
    tx, se = [], []
    for r, (tok, sent) in zip(rows, enc_out):
        r["n_text"] = int(tok.shape[0]) if tok is not None else 0
        r["has_sentence"] = sent is not None
        if tok is not None:
            tx.append(tok)
        se.append(sent if sent is not None else np.zeros(enc.dim, np.float32))
    arrays = {"text_x": (np.concatenate(tx) if tx else np.zeros((0, enc.dim))).astype(np.float16),
              "audio_x": arr["audio_x"], "audio_t": arr["audio_t"],
              "sentence": (np.stack(se) if se else np.zeros((0, enc.dim))).astype(np.float16)}
    log.info("re-encoded %d texts at layer %d in %.1f s", len(rows), enc.layer, time.perf_counter() - t0)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    new_header = {**header, "key": key, "extractors": extractors, "utterances": rows,
                  "dims": {**header["dims"], "text": enc.dim}, "derived_from": str(stem.name),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    tmp = out.with_suffix(".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp),
              metadata={"format": CACHE_FORMAT, "key": key})
    out.with_suffix(".json").write_text(json.dumps(new_header, ensure_ascii=False, indent=0))
    os.replace(tmp, out.with_suffix(".safetensors"))
    return out.with_suffix(".safetensors")


def finetune(tcfg: TrainingConfig, cfg: SyncTVAConfig, encoder_lr: float = 3e-5,
             delta_dtype: torch.dtype = torch.float16, save: bool = True) -> dict[str, Any]:
    """Train Sync-TVA (top-K text layers fine-tuned when ``cfg.model.text_top_layers > 0``).

    Args:
        tcfg: training settings (caches are looked up in ``tcfg.cache_dir`` for the configured
            extractors, so the text cache must hold layer-``features.text_layer`` states).
        cfg: features + model; ``features.text_layer`` + ``model.text_top_layers`` must not
            exceed the encoder's depth.
        encoder_lr: AdamW learning rate of the top layers (the fusion uses ``tcfg.lr``).
        delta_dtype: storage dtype of the checkpoint's layer deltas.
        save: write the best epoch's checkpoint to ``tcfg.out_dir``.

    Returns:
        ``{"best_epoch", "valid": metrics of the best epoch, "history": per-epoch loss, accuracy,
        weighted F1 and seconds, "epoch_s_mean", "checkpoint": path or None, "checkpoint_mb"}``.

    Raises:
        FileNotFoundError: missing cache; ValueError: no active modality or bad layer counts.
    """

    tcfg.validate()
    if tcfg.num_threads:
        torch.set_num_threads(tcfg.num_threads)
    seed_everything(tcfg.seed)
    device = torch.device(tcfg.device)
    train_c, valid_c, names, identities, active, dims, train_ds, valid_ds, counts = prepare_data(tcfg, cfg)
    model = SyncTVA(cfg.model, dims, active)
    top_params: list[torch.nn.Parameter] = []
    if cfg.model.text_top_layers and active["text"]:
        f = cfg.features
        enc = TextEncoder(f.text_encoder, max_tokens=f.text_max_tokens, layer=f.text_layer)
        texts = [u.meta.get("text", "") for u in train_c.items[:512]]
        model.attach_text_top(build_text_top(enc, f.text_layer, cfg.model.text_top_layers, texts=texts))
        top_params = list(model.text_top.parameters())
        del enc
    model.to(device)
    top_ids = {id(p) for p in top_params}
    groups = [{"params": [p for p in model.parameters() if id(p) not in top_ids], "lr": tcfg.lr}]
    if top_params:
        groups.append({"params": top_params, "lr": encoder_lr})
    opt = torch.optim.AdamW(groups, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    loss_fn = build_loss(cfg.model, counts).to(device)
    best_f1, best_epoch, best_state, best_m, history = -1.0, -1, None, None, []
    for epoch in range(tcfg.epochs):
        if best_epoch >= 0 and tcfg.patience and epoch - best_epoch > tcfg.patience:
            break
        t0 = time.perf_counter()
        train_loss = train_one_epoch(model, train_ds, loss_fn, opt, tcfg, epoch, device)
        train_s = time.perf_counter() - t0
        y, p, _ = evaluate_model(model, valid_ds, tcfg.eval_batch_size, device)
        m = classification_metrics(y, p, names)
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "train_s": train_s,
                        "valid_accuracy": m["accuracy"], "valid_weighted_f1": m["weighted_f1"]})
        log.info("epoch %d: loss %.4f acc %.4f wF1 %.4f (%.0f s)", epoch + 1, train_loss, m["accuracy"],
                 m["weighted_f1"], train_s)
        if m["weighted_f1"] > best_f1:
            best_f1, best_epoch, best_m = m["weighted_f1"], epoch, m
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.cpu().eval()
    result = {"best_epoch": best_epoch + 1,
              "valid": {kk: best_m[kk] for kk in ("n", "accuracy", "weighted_f1", "macro_f1")},
              "history": history, "epoch_s_mean": float(np.mean([h["train_s"] for h in history])),
              "train_size": len(train_ds), "valid_size": len(valid_ds), "checkpoint": None}
    if save:
        manifest = {"name": tcfg.name,
                    "extractors": {m: (identities.get(m) if model.active[m] else None) for m in MODALITIES},
                    "training": {**dataclasses.asdict(tcfg), "encoder_lr": encoder_lr, "best_epoch": best_epoch + 1,
                                 "history": history, "features": dataclasses.asdict(cfg.features)},
                    "metrics": {"valid": result["valid"], "split": tcfg.valid_split, "dataset": tcfg.dataset}}
        out = (save_text_top_checkpoint(tcfg.out_dir, model, manifest, delta_dtype) if model.text_top is not None
               else save_checkpoint(tcfg.out_dir, model, manifest))
        result["checkpoint"] = str(out)
        result["checkpoint_mb"] = round(sum(f.stat().st_size for f in Path(out).iterdir()) / 1e6, 2)
    return result
