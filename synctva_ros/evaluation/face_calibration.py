"""Temperature calibration of the facial-expression expert on labelled photographs, with a held-out check.

The labelled images (a CSV as :func:`~synctva_ros.evaluation.faces.read_face_labels` reads, e.g.
``../shared/data/faces/labels.csv``) are shuffled with a seed, ``limit`` of them are kept and split into a
fitting part (``fit_fraction``) and a held-out part. The expert's MELD-ordered probabilities of each image's
largest face (:class:`~synctva_ros.features.faces.experts.VisualExpert`) are turned into log-probabilities
(floored at :data:`PROB_FLOOR`: float32 softmax outputs can be exactly 0), the temperature is fitted on the
fitting part (:func:`~synctva_ros.model.calibration.fit_temperature`) and the NLL / ECE with ``T = 1`` and
with the fitted ``T`` are reported on the held-out part. Images where no face is found are left out of
both parts (and counted): the fused pipeline treats them as a missing visual expert, not as evidence.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from synctva_ros.features.faces.experts import DEFAULT_EXPERTS, MELD_ORDER, VisualExpert
from synctva_ros.model.calibration import expected_calibration_error, fit_temperature, nll
from synctva_ros.model.experts import log_softmax
from .faces import read_face_labels, read_rgb

__all__ = ["PROB_FLOOR", "face_log_probs", "calibrate_face_temperature"]

log = logging.getLogger(__name__)

#: Smallest probability before the log (keeps every log-probability finite).
PROB_FLOOR = 1e-30


def face_log_probs(rows: Sequence[tuple[Path, str]], expert: VisualExpert) -> tuple[np.ndarray, np.ndarray,
                                                                                    np.ndarray]:
    """The expert's log-probabilities of each image's largest face.

    Args:
        rows: ``[(image path, MELD class)]``.
        expert: the visual expert.

    Returns:
        ``(log_probs (N, 7) over MELD_ORDER, labels (N,), found (N,) bool)``; rows without a face have
        ``found`` False and log-probabilities NaN.

    Raises:
        FileNotFoundError: an image cannot be read.
    """
    out = np.full((len(rows), len(MELD_ORDER)), np.nan)
    found = np.zeros(len(rows), bool)
    for i, (path, _) in enumerate(rows):
        faces = expert(read_rgb(path), track=False)
        if faces:
            best = max(faces, key=lambda f: f.area)
            out[i] = np.log(np.maximum(best.probs.astype(np.float64), PROB_FLOOR))
            found[i] = True
    labels = np.array([MELD_ORDER.index(lab) for _, lab in rows], np.int64)
    return out, labels, found


def _scores(lp: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"nll": nll(lp, y), "ece": expected_calibration_error(np.exp(lp), y),
            "accuracy": float((lp.argmax(1) == y).mean())}


def calibrate_face_temperature(csv_path: str | Path, limit: int = 400, seed: int = 0, fit_fraction: float = 0.5,
                               detector: str = "mtcnn", experts: Sequence[str] = DEFAULT_EXPERTS,
                               expert: VisualExpert | None = None) -> dict[str, Any]:
    """Fit the visual expert's temperature on part of a labelled image set and check it on the rest.

    Args:
        csv_path: labels CSV (``image,emotion``).
        limit: images used (after a seeded shuffle; None or 0: all).
        seed: shuffle seed.
        fit_fraction: share of the used images that fit ``T``, in (0, 1).
        detector, experts: the :class:`VisualExpert` to build (ignored when ``expert`` is given).
        expert: a ready expert.

    Returns:
        ``temperature``; ``fit`` (the :class:`~synctva_ros.model.calibration.TemperatureFit` on the fitting
        part, as a dict); ``held_out`` ``{"n", "before": {nll, ece, accuracy}, "after": {...}}``; ``n_images``,
        ``n_fit``, ``no_face`` (images without a face, left out), ``skipped`` (labels the model does not know),
        ``seed``, ``experts``, ``detector``, ``seconds``.

    Raises:
        ValueError: ``fit_fraction`` outside (0, 1), or a part with no face found; FileNotFoundError: CSV or
            image missing.
    """
    if not 0 < fit_fraction < 1:
        raise ValueError(f"fit_fraction must be in (0, 1), got {fit_fraction}")
    rows, skipped = read_face_labels(csv_path)
    order = np.random.default_rng(seed).permutation(len(rows))
    rows = [rows[i] for i in order[:limit or None]]
    vx = expert or VisualExpert(detector=detector, experts=experts)
    t0 = time.perf_counter()
    lp, y, found = face_log_probs(rows, vx)
    n_fit = int(round(len(rows) * fit_fraction))
    fit_part = np.arange(len(rows)) < n_fit
    a, b = fit_part & found, ~fit_part & found
    if not a.any() or not b.any():
        raise ValueError(f"no face found in the fitting or the held-out part ({a.sum()}, {b.sum()} faces)")
    fit = fit_temperature(lp[a], y[a])
    report = {"temperature": fit.temperature, "fit": fit.as_dict(),
              "held_out": {"n": int(b.sum()), "before": _scores(log_softmax(lp[b]), y[b]),
                           "after": _scores(log_softmax(lp[b] / fit.temperature), y[b])},
              "n_images": len(rows), "n_fit": int(a.sum()), "no_face": int((~found).sum()), "skipped": skipped,
              "seed": seed, "experts": list(vx.experts), "detector": vx.detector.name,
              "seconds": time.perf_counter() - t0}
    log.info("face temperature %.3f (fit on %d faces); held-out n=%d NLL %.3f -> %.3f, ECE %.3f -> %.3f",
             fit.temperature, a.sum(), b.sum(), report["held_out"]["before"]["nll"],
             report["held_out"]["after"]["nll"], report["held_out"]["before"]["ece"],
             report["held_out"]["after"]["ece"])
    return report
