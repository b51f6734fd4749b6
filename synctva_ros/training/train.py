"""Train Sync-TVA on a feature cache (paper Sec. 3.5 / 4: cross-entropy with class-imbalance handling,
model selection by weighted F1 on the validation split).

``train(tcfg, cfg)``:

1. seeds python / numpy / torch, turns on deterministic algorithms (warn only);
2. loads (or, with ``training.build_cache``, builds) the train and validation caches; the
   cache's extractor identities become the checkpoint's ``extractors`` (visual: ``None``);
3. builds :class:`~synctva_ros.model.synctva.SyncTVA` with the cache's feature widths; a
   modality is *active* when it is in ``training.modalities`` and the cache has it;
4. AdamW, loss from :func:`synctva_ros.model.losses.build_loss` with the training class
   counts, gradient clipping, tqdm progress bars;
5. after every epoch: weighted F1 on the validation split; the best epoch is saved with
   :func:`synctva_ros.checkpoint.save_checkpoint`; early stop after ``patience`` epochs
   without improvement;
6. a resume file (``resume.pt`` in ``out_dir``: model, optimizer, epoch, best state, torch RNG)
   is written after each epoch, so ``resume=True`` continues an interrupted run and ends with
   the same result as an uninterrupted one.

Shuffling uses a generator seeded with ``seed * 100003 + epoch``, so the order does not depend on
how many epochs ran in this process.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from synctva_ros.checkpoint import save_checkpoint
from synctva_ros.config import SyncTVAConfig
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.datasets.cache import CachedSplit, build_cache, find_cache, load_cache
from synctva_ros.evaluation.metrics import classification_metrics
from synctva_ros.model.losses import build_loss
from synctva_ros.model.synctva import SyncTVA
from synctva_ros.training.config import TrainingConfig, load_training_config
from synctva_ros.training.data import UtteranceDataset, class_counts, make_loader

__all__ = ["train", "train_from_file", "seed_everything", "evaluate_model", "load_split_cache", "prepare_data",
           "train_one_epoch", "RESUME_FILE"]

log = logging.getLogger(__name__)

RESUME_FILE = "resume.pt"
_VISUAL_DIMS = {"resnet18": 512, "resnet34": 512}


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; deterministic torch algorithms where available (warn otherwise)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


def load_split_cache(tcfg: TrainingConfig, cfg: SyncTVAConfig, split: str, limit: int = 0) -> CachedSplit:
    """The :class:`~synctva_ros.datasets.cache.CachedSplit` of ``split`` matching the configured extractors.

    Looks for ``{cache_dir}/{dataset}_{split}_{key}.safetensors`` with the key of the configured
    extractors; builds it when ``training.build_cache`` is true.

    Raises:
        FileNotFoundError: no matching cache and ``build_cache`` is false (the message says how to build it).
    """
    names = list(cfg.model.class_names)
    if tcfg.build_cache:
        path = build_cache(tcfg.dataset, split, cfg.features, tcfg.cache_dir, limit=limit or None,
                           data_dir=tcfg.data_dir or None, progress=tcfg.progress)
        return load_cache(path, names)
    found = find_cache(tcfg.cache_dir, tcfg.dataset, split)
    wanted = _wanted_identities(cfg)
    for p in found:
        header = json.loads(p.with_suffix(".json").read_text())
        if not _identities_match(header.get("extractors", {}), wanted):
            continue
        if limit and header.get("count", 0) < limit:
            continue
        c = load_cache(p, names)
        if limit:
            c.items = c.items[:limit]
        return c
    raise FileNotFoundError(
        f"no feature cache of {tcfg.dataset}/{split} for the configured extractors in {tcfg.cache_dir} "
        f"(found {len(found)} other(s)); build it with `synctva cache {tcfg.dataset} {split} --out "
        f"{tcfg.cache_dir}` or set training.build_cache=true")


def _wanted_identities(cfg: SyncTVAConfig) -> dict[str, Any]:
    """Cheap identity fields of the configured extractors (no model loading) to select a cache."""
    f = cfg.features
    return {"text": {"name": f.text_encoder, "max_tokens": f.text_max_tokens, "layer": f.text_layer},
            "audio": {"feature_set": f.audio_feature_set, "sample_rate": f.audio_sample_rate,
                      "max_nodes": f.audio_max_nodes, "level": f.audio_level}}


def _identities_match(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for m, keys in wanted.items():
        s = stored.get(m)
        if s is None:
            continue  # modality not cached: it will be inactive
        if any(s.get(k) != v for k, v in keys.items()):
            return False
    return True


@torch.inference_mode()
def evaluate_model(model: torch.nn.Module, ds: UtteranceDataset, batch_size: int = 128,
                   device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``model.forward_batch`` over ``ds``.

    Returns:
        ``(y_true (N,), y_pred (N,), probabilities (N, C))``.
    """
    was = model.training
    model.eval()
    ys, ps, probs = [], [], []
    for batch in make_loader(ds, batch_size, shuffle=False):
        logits, _ = model.forward_batch(batch.to(device))
        p = torch.softmax(logits.float(), dim=-1).cpu()
        ys.append(batch.labels.cpu())
        ps.append(p.argmax(-1))
        probs.append(p)
    model.train(was)
    return torch.cat(ys).numpy(), torch.cat(ps).numpy(), torch.cat(probs).numpy()


def _model_dims(cache_dims: dict[str, int], cfg: SyncTVAConfig) -> dict[str, int]:
    dims = dict(cache_dims)
    if not dims.get("visual"):
        dims["visual"] = _VISUAL_DIMS.get(cfg.features.visual_encoder, 2048)
    for m in MODALITIES:
        if not dims.get(m):
            dims[m] = 1
    return dims


def prepare_data(tcfg: TrainingConfig, cfg: SyncTVAConfig) -> tuple:
    """Caches, class names, extractor identities, active branches, model dims, datasets and class counts.

    Returns:
        ``(train_cache, valid_cache, names, identities, active, dims, train_ds, valid_ds, counts)``.

    Raises:
        FileNotFoundError: missing cache. ValueError: cache classes differ from
        ``cfg.model.class_names``, or no modality is active.
    """
    train_c = load_split_cache(tcfg, cfg, tcfg.train_split, tcfg.limit)
    valid_c = load_split_cache(tcfg, cfg, tcfg.valid_split, tcfg.valid_limit)
    names = list(cfg.model.class_names)
    if train_c.header.get("class_names") and set(train_c.header["class_names"]) != set(names):
        raise ValueError(f"cache classes {train_c.header['class_names']} != model.class_names {names}")
    identities = train_c.identities
    active = {m: (m in tcfg.modalities and bool(train_c.dims.get(m)) and identities.get(m) is not None)
              for m in MODALITIES}
    if not any(active.values()):
        raise ValueError("no modality is active (check training.modalities and the cache)")
    dims = _model_dims(train_c.dims, cfg)
    k = cfg.model.context_turns
    train_ds = UtteranceDataset(train_c.items, dims, k, active)
    valid_ds = UtteranceDataset(valid_c.items, dims, k, active)
    counts = class_counts(train_c.items, len(names))
    return train_c, valid_c, names, identities, active, dims, train_ds, valid_ds, counts


def train_one_epoch(model: torch.nn.Module, train_ds: Any, loss_fn: torch.nn.Module, opt: torch.optim.Optimizer,
                    tcfg: TrainingConfig, epoch: int, device: torch.device) -> float:
    """One pass over ``train_ds`` (shuffled with ``seed * 100003 + epoch``); returns the mean training loss.

    Gradients are clipped to ``tcfg.grad_clip`` (0 = off); progress bar when ``tcfg.progress``.
    """
    model.train()
    loader = make_loader(train_ds, tcfg.batch_size, shuffle=True, seed=tcfg.seed * 100003 + epoch)
    total, n = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{tcfg.epochs}", unit="batch", disable=not tcfg.progress,
               leave=False)
    for batch in bar:
        batch = batch.to(device)
        logits, _ = model.forward_batch(batch)
        loss = loss_fn(logits, batch.labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tcfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        total += float(loss.detach()) * batch.labels.shape[0]
        n += batch.labels.shape[0]
        bar.set_postfix(loss=f"{total / max(n, 1):.4f}")
    return total / max(n, 1)


def train(tcfg: TrainingConfig, cfg: SyncTVAConfig, resume: bool = False) -> Path:
    """Train and save a checkpoint; returns its directory (``tcfg.out_dir``).

    The steps are those of the module docstring; the checkpoint holds the best epoch by validation
    weighted F1, and ``resume.pt`` in the same directory the state after the last epoch.

    Args:
        tcfg: how to train (:class:`~synctva_ros.training.config.TrainingConfig`; validated here).
        cfg: model and feature configuration (:class:`~synctva_ros.config.SyncTVAConfig`).
        resume: continue from ``resume.pt`` when it exists (else start from scratch, with a warning).

    Returns:
        ``Path(tcfg.out_dir)``.

    Raises:
        synctva_ros.config.ConfigError: ``tcfg`` out of range.
        FileNotFoundError: missing cache (see :func:`load_split_cache`).
        ValueError: the cache's class names do not match ``cfg.model.class_names``, or no
            modality is active.
    """
    tcfg.validate()
    if tcfg.num_threads:
        torch.set_num_threads(tcfg.num_threads)
    seed_everything(tcfg.seed)
    device = torch.device(tcfg.device)
    out = Path(tcfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    train_c, valid_c, names, identities, active, dims, train_ds, valid_ds, counts = prepare_data(tcfg, cfg)

    model = SyncTVA(cfg.model, dims, active).to(device)
    loss_fn = build_loss(cfg.model, counts).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    start_epoch, best_f1, best_epoch, best_state, history = 0, -1.0, -1, None, []
    rpath = out / RESUME_FILE
    if resume and rpath.exists():
        st = torch.load(rpath, map_location="cpu", weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        start_epoch, best_f1, best_epoch = int(st["epoch"]) + 1, float(st["best_f1"]), int(st["best_epoch"])
        best_state = st.get("best_model")
        history = json.loads(st.get("history", "[]"))
        torch.set_rng_state(st["rng"])
        log.info("resuming %s after epoch %d (best weighted F1 %.4f at epoch %d)", out, start_epoch - 1, best_f1,
                 best_epoch)
    elif resume:
        log.warning("no resume file at %s: starting from scratch", rpath)

    training_info = {**dataclasses.asdict(tcfg), "class_counts": dict(zip(names, counts)),
                     "train_size": len(train_ds), "valid_size": len(valid_ds),
                     "cache_keys": {"train": train_c.header.get("key"), "valid": valid_c.header.get("key")},
                     "features": dataclasses.asdict(cfg.features)}
    t_start = time.perf_counter()
    for epoch in range(start_epoch, tcfg.epochs):
        if best_epoch >= 0 and tcfg.patience and epoch - best_epoch > tcfg.patience:
            break
        model.train()
        train_loss = train_one_epoch(model, train_ds, loss_fn, opt, tcfg, epoch, device)
        y, p, _ = evaluate_model(model, valid_ds, tcfg.eval_batch_size, device)
        m = classification_metrics(y, p, names)
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "valid_accuracy": m["accuracy"],
                        "valid_weighted_f1": m["weighted_f1"]})
        log.info("epoch %d: loss %.4f  valid acc %.4f  weighted F1 %.4f", epoch + 1, train_loss,
                 m["accuracy"], m["weighted_f1"])
        if m["weighted_f1"] > best_f1:
            best_f1, best_epoch = m["weighted_f1"], epoch
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            _save(out, model, best_state, tcfg, training_info, identities, m, epoch, history)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "best_f1": best_f1, "best_epoch": best_epoch, "best_model": best_state,
                    "history": json.dumps(history), "rng": torch.get_rng_state()}, str(rpath) + ".tmp")
        os.replace(str(rpath) + ".tmp", rpath)
    log.info("training done in %.1f s; best valid weighted F1 %.4f at epoch %d", time.perf_counter() - t_start,
             best_f1, best_epoch + 1)
    if best_state is not None:
        final = copy.deepcopy(model)
        final.load_state_dict(best_state)
        y, p, _ = evaluate_model(final, valid_ds, tcfg.eval_batch_size, device)
        m = classification_metrics(y, p, names)
        _save(out, final, best_state, tcfg, training_info, identities, m, best_epoch, history)
    return out


def _save(out: Path, model: SyncTVA, state: dict, tcfg: TrainingConfig, training_info: dict, identities: dict,
          metrics: dict, epoch: int, history: list) -> None:
    snap = copy.deepcopy(model).cpu()
    snap.load_state_dict(state)
    info = {**training_info, "best_epoch": epoch + 1, "history": history}
    save_checkpoint(out, snap.eval(), {
        "name": tcfg.name,
        "extractors": {m: (identities.get(m) if snap.active[m] else None) for m in MODALITIES},
        "training": info,
        "metrics": {"valid": {k: metrics[k] for k in ("n", "accuracy", "weighted_f1", "macro_f1", "per_class",
                                                        "confusion")},
                    "split": tcfg.valid_split, "dataset": tcfg.dataset},
    })


def train_from_file(config: str | os.PathLike[str] | None, *, overrides: Sequence[str] = (),
                    resume: bool = False) -> Path:
    """Train the run a training YAML describes (``synctva train CONFIG.yaml [--set k=v ...] [--resume]``).

    Args:
        config: training YAML (:func:`~synctva_ros.training.config.load_training_config`); ``None``
            = defaults only.
        overrides: ``key=value`` overrides (``training.epochs=5``, ``model.hidden=64``, ...).
        resume: continue from the run's resume file (``resume.pt`` in ``training.out_dir``).

    Returns:
        The checkpoint directory (:func:`train`).

    Raises:
        synctva_ros.config.ConfigError: unknown keys / bad values. FileNotFoundError: a missing
        file, profile or cache. ValueError: see :func:`train`.
    """
    tcfg, cfg = load_training_config(config, list(overrides) or None)
    return train(tcfg, cfg, resume=resume)
