"""Train Sync-TVA on a feature cache: one loop for the frozen encoder and for fine-tuned top layers.

``train(tcfg, cfg)`` (paper Sec. 3.5 / 4: cross-entropy with class-imbalance handling; the
selection protocol is issue 8's):

1. seeds python / numpy / torch, turns on deterministic algorithms (warn only);
2. reads the training split's cache and holds out ``training.valid_fraction`` of its **dialogues**
   (seeded by ``training.split_seed``; or those matching ``training.valid_dialogues``) as the validation split
   (:func:`~synctva_ros.training.split.split_by_dialogue`); reads the report split's cache
   (``training.report_split``: MELD ``dev``, IEMOCAP ``valid``); the cache's extractor identities
   become the checkpoint's ``extractors`` (visual: ``None``);
3. builds :class:`~synctva_ros.model.synctva.SyncTVA` with the cache's feature widths; with
   ``model.text_top_layers = K > 0`` the text encoder's pretrained top K layers run inside the model
   on layer-``features.text_layer`` token states (a cache of that layer is derived from a last-layer
   cache when missing, :mod:`synctva_ros.training.caches`) and train with ``training.encoder_lr``;
4. AdamW, loss ``training.loss`` (default ``model.loss``: ``ce``, ``weighted_ce``, ``focal``,
   ``logit_adjusted``; :func:`synctva_ros.model.losses.build_loss`) with the training part's class
   counts, gradient clipping, tqdm progress bars;
5. after every epoch: accuracy, weighted F1 and macro F1 on the validation split; the epoch with the
   best ``training.select_metric`` is saved (:func:`~synctva_ros.training.saving.save_trained`: fusion
   weights, top-layer deltas in ``training.delta_dtype``, at most ``training.max_checkpoint_mb``);
   early stop after ``patience`` epochs without improvement; with ``training.ema_decay`` the weights' moving
   average (updated every step) is what is validated, selected and saved. The report split is never used for a
   decision (with ``training.report_each_epoch`` its scores are only logged in the history);
6. at the end the selected model is scored once on the report split; the manifest ``metrics`` and
   ``metrics.json`` hold ``valid`` and ``report`` (accuracy, weighted F1, macro F1, per class), the
   manifest ``training.validation`` the held-out dialogue ids, their sha256 and the counts; the
   selected model's temperature (Guo et al. 2017) is fitted on the validation split
   (:func:`~synctva_ros.model.calibration.fit_temperature`) and stored as manifest
   ``training.calibration`` (with NLL and ECE before/after) and as the model expert's temperature in
   the manifest's ``expert_fusion`` block (:mod:`synctva_ros.checkpoint.fusion`; the visual expert's
   defaults, a uniform prior), the product of experts the pipeline fuses the face evidence with;
7. a resume file (``resume.pt`` in ``out_dir``: model, optimizer, epoch, best state, torch RNG) is
   written after each epoch, so ``resume=True`` ends with the same result as an uninterrupted run.

:mod:`synctva_ros.training.runs` repeats the run for several seeds or validation folds and writes their mean and
spread. Shuffling uses a generator seeded with ``seed * 100003 + epoch``,
so the order does not depend on how many epochs ran in this process.
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

from synctva_ros.checkpoint.fusion import default_fusion_block, fusion_block, write_fusion
from synctva_ros.config import SyncTVAConfig
from synctva_ros.evaluation.metrics import classification_metrics
from synctva_ros.model.calibration import fit_temperature
from synctva_ros.model.losses import build_loss
from synctva_ros.training.config import TrainingConfig
from synctva_ros.training.data import UtteranceDataset, make_loader
from synctva_ros.training.precision import TrainingPrecision
from synctva_ros.training.prepare import TrainingData, build_model, prepare_data
from synctva_ros.training.saving import REPORTED, metric_summary, save_trained, write_metrics

__all__ = ["train", "seed_everything", "evaluate_model", "score", "calibrate", "train_one_epoch", "RESUME_FILE"]

log = logging.getLogger(__name__)

RESUME_FILE = "resume.pt"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; deterministic torch algorithms where available (warn otherwise)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


@torch.inference_mode()
def evaluate_model(model: torch.nn.Module, ds: UtteranceDataset, batch_size: int = 128,
                   device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``model.forward_batch`` over ``ds`` in eval mode (the model's mode is restored).

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


def score(model: torch.nn.Module, ds: UtteranceDataset, names: Sequence[str], batch_size: int = 128,
          device: str | torch.device = "cpu") -> dict[str, Any]:
    """:func:`~synctva_ros.evaluation.metrics.classification_metrics` of ``model`` on ``ds``."""
    y, p, _ = evaluate_model(model, ds, batch_size, device)
    return classification_metrics(y, p, names)


def train_one_epoch(model: torch.nn.Module, train_ds: Any, loss_fn: torch.nn.Module, opt: torch.optim.Optimizer,
                    tcfg: TrainingConfig, epoch: int, device: torch.device,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    precision: TrainingPrecision | None = None,
                    ema: torch.optim.swa_utils.AveragedModel | None = None) -> float:
    """One pass over ``train_ds`` (shuffled with ``seed * 100003 + epoch``, in batches of similar text length when
    ``tcfg.group_by_length``); returns the mean training loss.

    Gradients of all parameters (fusion and top layers) are clipped together to ``tcfg.grad_clip``
    (0 = off); ``scheduler`` (if any) steps after every batch; progress bar when ``tcfg.progress``;
    ``precision`` (default fp32) runs the forward under autocast (:mod:`.precision`); ``ema`` (if any) averages
    the weights after every step.
    """
    model.train()
    loader = make_loader(train_ds, tcfg.batch_size, shuffle=True, seed=tcfg.seed * 100003 + epoch,
                         group_by_length=tcfg.group_by_length)
    total, n = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{tcfg.epochs}", unit="batch", disable=not tcfg.progress,
               leave=False)
    prec = precision or TrainingPrecision("fp32", device)
    for batch in bar:
        batch = batch.to(device)
        with prec.autocast():
            logits, _ = model.forward_batch(batch)
            loss = loss_fn(logits.float(), batch.labels)
        prec.step(loss, opt, model.parameters(), tcfg.grad_clip)
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        total += float(loss.detach()) * batch.labels.shape[0]
        n += batch.labels.shape[0]
        bar.set_postfix(loss=f"{total / max(n, 1):.4f}")
    return total / max(n, 1)


def _optimizer(model: torch.nn.Module, top_params: list, tcfg: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW: fusion parameters at ``lr``, fine-tuned top layers (if any) at ``encoder_lr``."""
    top_ids = {id(p) for p in top_params}
    groups = [{"params": [p for p in model.parameters() if id(p) not in top_ids], "lr": tcfg.lr}]
    if top_params:
        groups.append({"params": top_params, "lr": tcfg.encoder_lr})
    return torch.optim.AdamW(groups, lr=tcfg.lr, weight_decay=tcfg.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, tcfg: TrainingConfig, batches_per_epoch: int
               ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step learning-rate schedule of ``tcfg.lr_schedule`` (``None`` for ``constant``)."""
    if tcfg.lr_schedule == "constant":
        return None
    from synctva_ros.features.torchvision_compat import ensure_torchvision

    ensure_torchvision()
    from transformers import get_linear_schedule_with_warmup  # deferred: transformers takes seconds to import

    total = max(1, tcfg.epochs * batches_per_epoch)
    return get_linear_schedule_with_warmup(opt, int(round(tcfg.warmup_fraction * total)), total)


def _averaged(model: torch.nn.Module, tcfg: TrainingConfig) -> torch.optim.swa_utils.AveragedModel | None:
    """The weights' exponential moving average (``training.ema_decay`` > 0), else ``None``; buffers are not
    averaged but copied from the live model before each use (:func:`_weights`)."""
    if not tcfg.ema_decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tcfg.ema_decay))


def _weights(model: torch.nn.Module, ema: torch.optim.swa_utils.AveragedModel | None) -> torch.nn.Module:
    """The model that is validated, selected and saved: the average when there is one, else ``model``."""
    if ema is None:
        return model
    with torch.no_grad():
        for mine, live in zip(ema.module.buffers(), model.buffers()):
            mine.copy_(live)
    return ema.module


def _row(prefix: str, m: dict[str, Any]) -> dict[str, float]:
    return {f"{prefix}_{k}": m[k] for k in REPORTED}


def train(tcfg: TrainingConfig, cfg: SyncTVAConfig, resume: bool = False) -> Path:
    """Train and save a checkpoint; returns its directory (``tcfg.out_dir``).

    The steps are those of the module docstring; the checkpoint holds the best epoch by the
    validation split's ``select_metric``, ``metrics.json`` its validation and report scores, and
    ``resume.pt`` in the same directory the state after the last epoch.

    Args:
        tcfg: how to train (:class:`~synctva_ros.training.config.TrainingConfig`; validated here).
        cfg: model and feature configuration (:class:`~synctva_ros.config.SyncTVAConfig`).
        resume: continue from ``resume.pt`` when it exists (else start from scratch, with a warning).

    Returns:
        ``Path(tcfg.out_dir)``.

    Raises:
        synctva_ros.config.ConfigError: ``tcfg`` out of range.
        FileNotFoundError: missing cache (see :func:`~synctva_ros.training.caches.load_split_cache`).
        ValueError: the cache's class names do not match ``cfg.model.class_names``, no modality is
            active, fewer than two training dialogues, or a resume file of another validation split.
        synctva_ros.training.saving.CheckpointTooLarge: the checkpoint exceeds ``max_checkpoint_mb``.
    """
    tcfg.validate()
    if tcfg.num_threads:
        torch.set_num_threads(tcfg.num_threads)
    seed_everything(tcfg.seed)
    device = torch.device(tcfg.device)
    out = Path(tcfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    data = prepare_data(tcfg, cfg)
    model, top_params, base_state = build_model(cfg, data, device, tcfg.lora_rank, tcfg.lora_alpha)
    loss_fn = build_loss(cfg.model, data.counts, tcfg.loss or None, tcfg.logit_tau).to(device)
    opt = _optimizer(model, top_params, tcfg)
    sched = _scheduler(opt, tcfg, -(-len(data.train_ds) // tcfg.batch_size))
    precision = TrainingPrecision(tcfg.precision, device)
    ema = _averaged(model, tcfg)
    split_sha = data.split["valid_dialogues_sha256"]
    start_epoch, best, best_epoch, best_state, history = 0, -1.0, -1, None, []
    rpath = out / RESUME_FILE
    if resume and rpath.exists():
        st = torch.load(rpath, map_location="cpu", weights_only=True)
        if st.get("split_sha256", split_sha) != split_sha:
            raise ValueError(f"{rpath} was trained with another validation split (valid_fraction / split_seed / "
                             f"valid_dialogues / data): start without resume or restore the settings")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        if sched is not None and st.get("scheduler") is not None:
            sched.load_state_dict(st["scheduler"])
        if precision.scaler is not None and st.get("scaler") is not None:
            precision.scaler.load_state_dict(st["scaler"])
        if ema is not None and st.get("ema") is not None:
            ema.load_state_dict(st["ema"])
        start_epoch, best_epoch = int(st["epoch"]) + 1, int(st["best_epoch"])
        best = float(st.get("best_score", st.get("best_f1", -1.0)))
        best_state = st.get("best_model")
        history = json.loads(st.get("history", "[]"))
        torch.set_rng_state(st["rng"])
        log.info("resuming %s after epoch %d (best valid %s %.4f at epoch %d)", out, start_epoch,
                 tcfg.select_metric, best, best_epoch + 1)
    elif resume:
        log.warning("no resume file at %s: starting from scratch", rpath)

    info = _training_info(tcfg, cfg, data)
    save = {"tcfg": tcfg, "identities": data.identities, "base_state": base_state}
    t_start = time.perf_counter()
    for epoch in range(start_epoch, tcfg.epochs):
        if best_epoch >= 0 and tcfg.patience and epoch - best_epoch > tcfg.patience:
            break
        t0 = time.perf_counter()
        train_loss = train_one_epoch(model, data.train_ds, loss_fn, opt, tcfg, epoch, device, sched, precision, ema)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_s": round(time.perf_counter() - t0, 3)}
        chosen = _weights(model, ema)
        vm = score(chosen, data.valid_ds, data.names, tcfg.eval_batch_size, device)
        row.update(_row("valid", vm))
        if tcfg.report_each_epoch and data.report_ds is not None:  # logged only, never compared
            row.update(_row("report", score(chosen, data.report_ds, data.names, tcfg.eval_batch_size, device)))
        history.append(row)
        log.info("epoch %d: loss %.4f  valid acc %.4f  weighted F1 %.4f  macro F1 %.4f", epoch + 1, train_loss,
                 vm["accuracy"], vm["weighted_f1"], vm["macro_f1"])
        if vm[tcfg.select_metric] > best:
            best, best_epoch = vm[tcfg.select_metric], epoch
            best_state = {k: v.detach().cpu().clone() for k, v in chosen.state_dict().items()}
            _save(out, chosen, best_state, info, vm, None, epoch, history, **save)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "scheduler": None if sched is None else sched.state_dict(),
                    "ema": None if ema is None else ema.state_dict(),
                    "scaler": None if precision.scaler is None else precision.scaler.state_dict(),
                    "best_score": best, "best_epoch": best_epoch, "best_model": best_state,
                    "history": json.dumps(history), "rng": torch.get_rng_state(), "split_sha256": split_sha},
                   str(rpath) + ".tmp")
        os.replace(str(rpath) + ".tmp", rpath)
    train_s = time.perf_counter() - t_start
    log.info("training done in %.1f s; best valid %s %.4f at epoch %d", train_s, tcfg.select_metric, best,
             best_epoch + 1)
    if best_state is not None:
        final = copy.deepcopy(model)
        final.load_state_dict(best_state)
        y, pred, probs = evaluate_model(final, data.valid_ds, tcfg.eval_batch_size, device)
        vm = classification_metrics(y, pred, data.names)
        info["calibration"] = calibrate(probs, y)
        rm = score(final, data.report_ds, data.names, tcfg.eval_batch_size, device) if data.report_ds else None
        _save(out, final, best_state, info, vm, rm, best_epoch, history, **save)
        write_fusion(out, fusion_with_model_temperature(data.names, info["calibration"]))
        write_metrics(out, {"name": tcfg.name, "dataset": tcfg.dataset, "best_epoch": best_epoch + 1,
                            "select_metric": tcfg.select_metric, "train_s": round(train_s, 1),
                            "valid_split": _valid_split_record(tcfg, data), "report_split": tcfg.report_split or None,
                            "valid": metric_summary(vm), "report": metric_summary(rm), "history": history})
        if rm is not None:
            log.info("report split %s: acc %.4f  weighted F1 %.4f  macro F1 %.4f", tcfg.report_split,
                     rm["accuracy"], rm["weighted_f1"], rm["macro_f1"])
    return out


def calibrate(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Temperature of a trained model on held-out probabilities (Guo et al. 2017), as a JSON object.

    Args:
        probs: ``(N, C)`` softmax outputs on the validation split (clipped to ``>= 1e-12`` before the log,
            so a confidently wrong row has a finite NLL).
        labels: ``(N,)`` class indices.

    Returns:
        :meth:`~synctva_ros.model.calibration.TemperatureFit.as_dict` (``temperature``, ``n``, NLL and
        ECE before and after) plus ``"split": "valid"``.

    Raises:
        ValueError: empty or non-finite input (:func:`~synctva_ros.model.calibration.fit_temperature`).
    """
    fit = fit_temperature(np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)), labels)
    log.info("temperature on the validation split: T = %.3f (NLL %.4f -> %.4f, ECE %.4f -> %.4f)", fit.temperature,
             fit.nll_before, fit.nll_after, fit.ece_before, fit.ece_after)
    return {**fit.as_dict(), "split": "valid"}


def fusion_with_model_temperature(class_names: Sequence[str], fit: dict[str, Any]) -> dict[str, Any]:
    """The default ``expert_fusion`` block with the model expert's temperature and its fit record.

    Args:
        class_names: the checkpoint's classes (the visual class map follows from them).
        fit: :func:`calibrate`'s record (``temperature`` > 0).

    Raises:
        synctva_ros.checkpoint.CheckpointError: classes the face evidence cannot be mapped onto.
    """
    base = default_fusion_block(class_names)
    temps = {k: v["temperature"] for k, v in base["experts"].items()}
    temps["model"] = float(fit["temperature"])
    return fusion_block(temps, base["prior"], {k: v["weight"] for k, v in base["experts"].items()},
                        base["class_map"], fits={"model": fit})


def _valid_split_record(tcfg: TrainingConfig, data: TrainingData) -> dict[str, Any]:
    s = data.split
    return {"from": tcfg.train_split, "valid_fraction": s["valid_fraction"], "split_seed": s["split_seed"],
            "valid_pattern": s["valid_pattern"], "valid_dialogues_sha256": s["valid_dialogues_sha256"],
            "valid_dialogue_count": s["valid_dialogue_count"],
            "valid_utterances": s["valid_utterances"]}


def _training_info(tcfg: TrainingConfig, cfg: SyncTVAConfig, data: TrainingData) -> dict[str, Any]:
    report_key = data.report_cache.header.get("key") if data.report_cache is not None else None
    return {**dataclasses.asdict(tcfg), "loss_used": tcfg.loss or cfg.model.loss,
            "class_counts": dict(zip(data.names, data.counts)), "train_size": len(data.train_ds),
            "valid_size": len(data.valid_ds), "report_size": len(data.report_ds) if data.report_ds else 0,
            "validation": dict(data.split),
            "cache_keys": {"train": data.train_cache.header.get("key"), "report": report_key},
            "features": dataclasses.asdict(cfg.features)}


def _save(out: Path, model: torch.nn.Module, state: dict, info: dict, valid: dict, report: dict | None, epoch: int,
          history: list, *, tcfg: TrainingConfig, identities: dict, base_state: dict | None) -> None:
    manifest = {"name": tcfg.name, "training": {**info, "best_epoch": epoch + 1, "history": history},
                "metrics": {"select_metric": tcfg.select_metric, "valid": metric_summary(valid),
                            "report": metric_summary(report), "report_split": tcfg.report_split or None,
                            "dataset": tcfg.dataset}}
    save_trained(out, model, state, manifest, identities, delta_dtype=tcfg.delta_dtype, base_state=base_state,
                 max_mb=tcfg.max_checkpoint_mb)
