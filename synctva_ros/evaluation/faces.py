"""``synctva evaluate-faces``: score the facial-expression expert on labelled images.

Input: a CSV with header ``image,emotion``; image paths relative to the CSV; emotion names as in
``../shared/data/faces`` (:data:`LABEL_TO_MELD`: happiness -> joy, sadness -> sadness, anger -> anger,
surprise -> surprise, fear -> fear, disgust -> disgust, neutral -> neutral). Rows with another label
(contempt) are skipped and counted. Each image's prediction is that of its largest face; an image with no
face (no detection and not a face crop, see :mod:`synctva_ros.features.faces.detect`) counts as not found
and is scored wrong (its prediction is set to a class different from its label). Metrics from
:func:`~synctva_ros.evaluation.metrics.classification_metrics` over MELD's seven classes.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from synctva_ros.features.faces.experts import DEFAULT_EXPERTS, MELD_ORDER, VisualExpert
from .metrics import classification_metrics, plot_confusion

__all__ = ["LABEL_TO_MELD", "read_face_labels", "read_rgb", "evaluate_faces"]

log = logging.getLogger(__name__)

#: Label names of the face data set -> MELD classes.
LABEL_TO_MELD = {"happiness": "joy", "sadness": "sadness", "anger": "anger", "surprise": "surprise",
                 "fear": "fear", "disgust": "disgust", "neutral": "neutral"}


def read_face_labels(csv_path: str | Path) -> tuple[list[tuple[Path, str]], dict[str, int]]:
    """Rows of a labels CSV.

    Args:
        csv_path: CSV with header ``image,emotion``.

    Returns:
        ``([(absolute image path, MELD class)], {skipped label: count})``.

    Raises:
        FileNotFoundError: no CSV; ValueError: the header lacks ``image`` or ``emotion``.
    """
    csv_path = Path(csv_path)
    rows, skipped = [], {}
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"image", "emotion"} <= set(reader.fieldnames):
            raise ValueError(f"{csv_path}: header must have image,emotion (has {reader.fieldnames})")
        for r in reader:
            lab = r["emotion"].strip().lower()
            if lab in LABEL_TO_MELD:
                rows.append((csv_path.parent / r["image"], LABEL_TO_MELD[lab]))
            elif lab in MELD_ORDER:
                rows.append((csv_path.parent / r["image"], lab))
            else:
                skipped[lab] = skipped.get(lab, 0) + 1
    return rows, skipped


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file (any format OpenCV reads) as the experts take it.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Raises:
        FileNotFoundError: missing or undecodable file.
    """
    # deferred: OpenCV is needed only to decode images
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def evaluate_faces(csv_path: str | Path, out_dir: str | Path | None = None, detector: str = "mtcnn",
                   experts: Sequence[str] = DEFAULT_EXPERTS, limit: int | None = None,
                   expert: VisualExpert | None = None) -> dict[str, Any]:
    """Score the visual expert on a labelled image CSV.

    Args:
        csv_path: the CSV (see the module).
        out_dir: folder for ``confusion_faces.png`` (none written when None).
        detector: face detector name.
        experts: expression experts (several: ensemble).
        limit: first N scored rows only.
        expert: a ready :class:`VisualExpert` (then ``detector``/``experts`` are ignored).

    Returns:
        ``n`` (rows scored), ``faces_found``, ``found_rate``, ``skipped`` (``{label: count}``), ``accuracy``,
        ``weighted_f1``, ``macro_f1``, ``per_class``, ``confusion``, ``class_names``, per-expert metrics under
        ``experts`` (each expert alone, same faces), ``ms_per_image`` (median), ``detector``, ``weights``
        (identities) and ``confusion_png`` when written. Metrics are fractions in [0, 1].

    Raises:
        FileNotFoundError: CSV or an image missing; ValueError: bad header or no scorable rows.
    """
    rows, skipped = read_face_labels(csv_path)
    rows = rows[:limit] if limit else rows
    if not rows:
        raise ValueError(f"{csv_path}: no rows with a label the model knows (skipped {skipped})")
    vx = expert or VisualExpert(detector=detector, experts=experts)
    per_names = list(vx.experts)
    y_true, preds, found, times = [], {k: [] for k in ["ensemble", *per_names]}, 0, []
    for path, label in rows:
        img = read_rgb(path)
        t0 = time.perf_counter()
        faces = vx(img, track=False)
        times.append(time.perf_counter() - t0)
        t = MELD_ORDER.index(label)
        y_true.append(t)
        if faces:
            found += 1
            best = max(faces, key=lambda f: f.area)
            preds["ensemble"].append(int(best.probs.argmax()))
            for name in per_names:
                preds[name].append(int(best.per_expert[name].argmax()))
        else:
            for k in preds:
                preds[k].append((t + 1) % len(MELD_ORDER))  # not found: scored wrong
    report = classification_metrics(y_true, preds["ensemble"], MELD_ORDER)
    report.update(faces_found=found, found_rate=found / len(rows), skipped=skipped,
                  ms_per_image=1000 * float(np.median(times)), detector=vx.detector.name,
                  expert_names=per_names, weights=vx.identities)
    if len(per_names) > 1:
        report["experts"] = {k: {m: v for m, v in classification_metrics(y_true, preds[k], MELD_ORDER).items()
                                 if m in ("accuracy", "weighted_f1", "macro_f1", "per_class")} for k in per_names}
    if out_dir is not None:
        title = f"faces: {'+'.join(per_names)} / {vx.detector.name}, n={len(rows)}"
        report["confusion_png"] = str(plot_confusion(report["confusion"], MELD_ORDER,
                                                     Path(out_dir) / "confusion_faces.png", title=title))
    log.info("faces: n=%d found=%d accuracy %.3f weighted F1 %.3f", len(rows), found, report["accuracy"],
             report["weighted_f1"])
    return report
