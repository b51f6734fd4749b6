"""``synctva calibrate``: fit the product of experts on a user's labelled, aligned recordings.

The shipped fusion (:mod:`synctva_ros.checkpoint.fusion`) is calibrated on data that was never aligned: the
network's temperature on the validation split of its training dialogues (text and espeak-ng audio), the face
expert's on labelled photographs. A robot's own recordings (bags as ``synctva make-bag`` writes them and as
robots record them with ``rosbag2``: camera, microphone, transcripts, and ``/ground_truth/emotion``
labels) are the only data where the experts speak about the same moment. This module replays them through
the pipeline exactly as ``synctva evaluate`` does (:func:`~synctva_ros.evaluation.offline.bag_windows`),
collects each window's raw expert outputs (:attr:`~synctva_ros.emotion.EmotionResult.expert_inputs`) and
its label, and fits, in order (Guo et al., ICML 2017; Kittler et al., TPAMI 1998, product rule):

1. the model expert's temperature on every labelled window;
2. the visual expert's temperature on the labelled windows where a face was seen (through the class map,
   so IEMOCAP checkpoints are fitted on their own classes);
3. the experts' weights :math:`w_e \\in [0, w_{max}]` minimising the fused NLL with the temperatures fixed
   (:func:`~synctva_ros.model.calibration.fit_weights`, a ridge pulling towards 1).

The result is a **copy** of the checkpoint with a new ``expert_fusion`` block (the weights file and the
sealed manifest are untouched, so its integrity record still holds) and a report of the fused NLL,
accuracy and weighted F1 before and after, on the same windows: in-sample figures, not a held-out score.
"""

from __future__ import annotations

import copy
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from synctva_ros.checkpoint.fusion import fusion_block, fusion_from_block, fusion_for_manifest, write_fusion
from synctva_ros.config import SyncTVAConfig
from synctva_ros.evaluation.metrics import classification_metrics
from synctva_ros.evaluation.offline import bag_windows, is_bag
from synctva_ros.model.calibration import fit_temperature, fit_weights, nll
from synctva_ros.model.experts import ExpertFusion, expert_log_posterior
from synctva_ros.pipeline import EmotionPipeline

__all__ = ["MIN_WINDOWS", "Observations", "collect", "fit_fusion", "calibrate_checkpoint"]

log = logging.getLogger(__name__)

#: Fewest labelled windows (and windows with a face, for the visual expert) a fit is made on.
MIN_WINDOWS = 10
_FLOOR = 1e-12


@dataclass
class Observations:
    """Labelled windows' raw expert outputs.

    Attributes:
        model: ``(N, C)`` network logits over the checkpoint's classes.
        visual: ``(N, 7)`` MELD-ordered face probabilities (rows without a face are uniform, masked out).
        has_face: ``(N,)`` bool.
        labels: ``(N,)`` class indices into the checkpoint's classes.
        skipped: windows left out, by reason (``no_label``, ``unknown_label``).
    """

    model: np.ndarray
    visual: np.ndarray
    has_face: np.ndarray
    labels: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)


def collect(pipe: EmotionPipeline, cfg: SyncTVAConfig, bags: Sequence[Path]) -> Observations:
    """Replay ``bags`` through ``pipe`` (as ``synctva evaluate`` does) and keep the labelled windows' expert outputs.

    Each bag starts a new dialogue context. Windows without a ground-truth label, or with a label the
    checkpoint does not know, are skipped and counted.

    Raises:
        FileNotFoundError: a path that is not a bag.
    """
    names = list(pipe.class_names)
    model, visual, face, labels = [], [], [], []
    skipped = {"no_label": 0, "unknown_label": 0}
    for bag in bags:
        if not is_bag(Path(bag)):
            raise FileNotFoundError(f"{bag}: not a rosbag2 directory or .mcap/.db3 file")
        pipe.reset_dialogue()
        pairs, _ = bag_windows(Path(bag), cfg, pipe)
        for window, label in pairs:
            res = pipe.predict(window)
            if not label:
                skipped["no_label"] += 1
                continue
            if label not in names:
                skipped["unknown_label"] += 1
                continue
            model.append(res.expert_inputs["model"])
            q = res.expert_inputs.get("visual")
            face.append(q is not None)
            visual.append(q if q is not None else [1.0 / 7] * 7)
            labels.append(names.index(label))
    c = len(names)
    return Observations(np.asarray(model, np.float64).reshape(-1, c), np.asarray(visual, np.float64).reshape(-1, 7),
                        np.asarray(face, bool), np.asarray(labels, np.int64), skipped)


def _fit_mapped_temperature(q: np.ndarray, y: np.ndarray, fusion: ExpertFusion) -> dict[str, Any]:
    """Temperature of the visual expert through its class map (NLL on the checkpoint's classes)."""
    cmap = fusion.class_maps.get("visual")
    z = np.log(np.maximum(q, _FLOOR))
    if cmap is None:
        return fit_temperature(z, y).as_dict()

    def loss(s: float) -> float:
        return nll(expert_log_posterior(z, float(np.exp(s)), cmap), y)

    res = minimize_scalar(loss, bounds=(np.log(0.01), np.log(100.0)), method="bounded", options={"xatol": 1e-7})
    t = float(np.exp(res.x)) if loss(float(res.x)) <= loss(0.0) else 1.0
    return {"temperature": t, "n": int(len(y)), "nll_before": loss(0.0), "nll_after": loss(np.log(t)),
            "class_map": cmap.name}


def _raw_outputs(obs: Observations) -> dict[str, np.ndarray]:
    """The experts' raw outputs as :class:`~synctva_ros.model.experts.ExpertFusion` takes them: model logits,
    face log-probabilities (floored, so a probability of 0 stays finite)."""
    return {"model": obs.model, "visual": np.log(np.maximum(obs.visual, _FLOOR))}


def _fused_scores(fusion: ExpertFusion, obs: Observations, names: Sequence[str]) -> dict[str, Any]:
    """Fused NLL, accuracy, weighted and macro F1 of ``fusion`` on ``obs`` (faces where seen)."""
    raw = _raw_outputs(obs)
    if "visual" not in fusion.temperatures:  # a block without the face expert fuses the model alone
        del raw["visual"]
    fused = fusion(raw, present={"visual": obs.has_face})
    m = classification_metrics(obs.labels, fused.argmax(1), list(names))
    return {"nll": nll(fused, obs.labels), "accuracy": m["accuracy"], "weighted_f1": m["weighted_f1"],
            "macro_f1": m["macro_f1"]}


def fit_fusion(obs: Observations, block: dict[str, Any], names: Sequence[str], ridge: float = 0.01,
               fit_weights_too: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """New temperatures (and weights) for ``block`` from ``obs``; returns ``(new block, report)``.

    Args:
        obs: :func:`collect`'s output.
        block: the checkpoint's current (validated) fusion block: prior and class map are kept.
        names: the checkpoint's classes.
        ridge: pull of the weights towards 1 (:func:`~synctva_ros.model.calibration.fit_weights`).
        fit_weights_too: also fit the weights (needs both experts on at least :data:`MIN_WINDOWS` windows).

    Raises:
        ValueError: fewer than :data:`MIN_WINDOWS` labelled windows.
    """
    n = len(obs.labels)
    if n < MIN_WINDOWS:
        raise ValueError(f"{n} labelled window(s): at least {MIN_WINDOWS} are needed to calibrate (skipped: "
                         f"{obs.skipped})")
    old = fusion_from_block(block, names)
    temps = {k: v["temperature"] for k, v in block["experts"].items()}
    weights = {k: v["weight"] for k, v in block["experts"].items()}
    fits: dict[str, Any] = {"model": {**fit_temperature(obs.model, obs.labels).as_dict(), "source": "calibrate"}}
    temps["model"] = fits["model"]["temperature"]
    n_face = int(obs.has_face.sum())
    if n_face >= MIN_WINDOWS and "visual" in temps:
        fits["visual"] = {**_fit_mapped_temperature(obs.visual[obs.has_face], obs.labels[obs.has_face], old),
                          "source": "calibrate"}
        temps["visual"] = fits["visual"]["temperature"]
    else:
        log.warning("%d labelled window(s) with a face: the visual expert keeps T = %s", n_face, temps.get("visual"))
    new = fusion_from_block(fusion_block(temps, block["prior"], weights, block["class_map"]), names)
    if fit_weights_too and "visual" in fits:
        wf = fit_weights(new.log_posteriors(_raw_outputs(obs)), obs.labels, block["prior"],
                         present={"model": np.ones(n, bool), "visual": obs.has_face}, ridge=ridge)
        weights = {k: float(v) for k, v in wf.weights.items()}
        fits["weights"] = wf.as_dict()
    out = fusion_block(temps, block["prior"], weights, block["class_map"],
                       fits={k: v for k, v in fits.items() if k in temps})
    if "weights" in fits:
        out["experts"]["model"]["fit"]["weights"] = fits["weights"]
    report = {"windows": n, "windows_with_face": n_face, "skipped": dict(obs.skipped),
              "before": _fused_scores(old, obs, names),
              "after": _fused_scores(fusion_from_block(out, names), obs, names),
              "temperatures": temps, "weights": weights, "in_sample": True}
    return out, report


def calibrate_checkpoint(checkpoint: Path, bags: Sequence[Path], cfg: SyncTVAConfig, out_dir: Path,
                         overwrite: bool = False, fit_weights_too: bool = True) -> dict[str, Any]:
    """``synctva calibrate``: a calibrated copy of ``checkpoint`` in ``out_dir``; returns the report.

    Args:
        checkpoint: the checkpoint directory to calibrate (not modified).
        bags: labelled, aligned recordings (ground truth on ``/ground_truth/emotion``).
        cfg: configuration (extractors, windowing, topics); ``runtime.checkpoint`` is replaced.
        out_dir: the copy to write (must not exist unless ``overwrite``).
        overwrite: replace an existing ``out_dir``.
        fit_weights_too: also fit the experts' weights.

    Returns:
        The report of :func:`fit_fusion` plus ``checkpoint`` (the copy's path).

    Raises:
        FileExistsError: ``out_dir`` exists. FileNotFoundError: a missing checkpoint or bag.
        ValueError: too few labelled windows. CheckpointError: a bad checkpoint.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists (use --overwrite to replace it)")
    cfg = copy.deepcopy(cfg)
    cfg.runtime.checkpoint = str(checkpoint)
    pipe = EmotionPipeline(cfg)
    try:
        obs = collect(pipe, cfg, bags)
    finally:
        pipe.close()
    _, block, _ = fusion_for_manifest(pipe.manifest)
    new_block, report = fit_fusion(obs, block, pipe.class_names, fit_weights_too=fit_weights_too)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(checkpoint, out_dir, ignore=shutil.ignore_patterns("resume.pt", "*.onnx", "*.engine", "*.plan"))
    write_fusion(out_dir, new_block)
    report["checkpoint"] = str(out_dir)
    log.info("calibrated %s on %d window(s) (%d with a face): fused NLL %.4f -> %.4f (in-sample), written to %s",
             checkpoint, report["windows"], report["windows_with_face"], report["before"]["nll"],
             report["after"]["nll"], out_dir)
    return report
