"""``synctva evaluate-faces``: score the facial-expression expert on labelled images.

Input: a CSV with header ``image,emotion``; image paths relative to the CSV; emotion names as in
``../shared/data/faces`` (:data:`LABEL_TO_MELD`: happiness -> joy, sadness -> sadness, anger -> anger,
surprise -> surprise, fear -> fear, disgust -> disgust, neutral -> neutral). Rows with another label
(contempt) are skipped and counted. Each image's prediction is that of its largest face; an image with no
face (no detection and not a face crop, see :mod:`synctva_ros.features.faces.detect`) counts as not found
and is scored wrong (its prediction is set to a class different from its label). Metrics from
:func:`~synctva_ros.evaluation.metrics.classification_metrics` over MELD's seven classes.

Every image gets the full detector (no tracking, no detection schedule). With ``frame`` (``--frame 640x480``)
each image is first pasted into the middle of a black camera frame of that size (shrunk to fit when larger,
as the staged demo's camera shows the photographs) and scored with the camera rule (no crop fallback), so the
detector's camera settings (``min_face_frac``, ``--min-face``) are scored on the pixels they will see.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from synctva_ros.features.faces.experts import DEFAULT_EXPERTS, MELD_ORDER, VisualExpert
from synctva_ros.features.faces.runtime import DEFAULT_RUNTIME
from .metrics import classification_metrics, plot_confusion

__all__ = ["LABEL_TO_MELD", "read_face_labels", "read_rgb", "in_frame", "evaluate_faces"]

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


def in_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` in the middle of a black ``width`` x ``height`` frame (shrunk to fit first when larger).

    Shapes:
        ``(H, W, 3)`` uint8 -> ``(height, width, 3)`` uint8.

    Raises:
        ValueError: a frame side < 1.
    """
    # deferred: OpenCV is needed only to shrink images
    import cv2

    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    h, w = image.shape[:2]
    f = min(1.0, width / w, height / h)
    if f < 1.0:
        image = cv2.resize(image, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - h) // 2, (width - w) // 2
    out[y0:y0 + h, x0:x0 + w] = image[..., :3]
    return out


def evaluate_faces(csv_path: str | Path, out_dir: str | Path | None = None, detector: str = "mtcnn",
                   experts: Sequence[str] = DEFAULT_EXPERTS, limit: int | None = None,
                   expert: VisualExpert | None = None, frame: tuple[int, int] | None = None,
                   min_face_frac: float = 0.0, runtime: str = DEFAULT_RUNTIME) -> dict[str, Any]:
    """Score the visual expert on a labelled image CSV.

    Args:
        csv_path: the CSV (see the module).
        out_dir: folder for ``confusion_faces.png`` (none written when None).
        detector: face detector name.
        experts: expression experts (several: ensemble).
        limit: first N scored rows only.
        expert: a ready :class:`VisualExpert` (then ``detector``, ``experts``, ``min_face_frac``, ``runtime`` are
            ignored).
        frame: ``(width, height)``: score each image pasted into such a black camera frame, camera rule
            (see the module); None: the image as it is, face crops accepted.
        min_face_frac: MTCNN's smallest face, fraction of the (frame's) shorter side (0 = its 40 px floor only).
        runtime: how the networks run (``onnxruntime`` or ``torch``).

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
    settings = {"min_face_frac": min_face_frac} if detector == "mtcnn" and min_face_frac else {}
    vx = expert or VisualExpert(detector=detector, experts=experts, runtime=runtime, detector_settings=settings,
                                accept_crops=frame is None)
    per_names = list(vx.experts)
    y_true, preds, found, times = [], {k: [] for k in ["ensemble", *per_names]}, 0, []
    for path, label in rows:
        img = read_rgb(path) if frame is None else in_frame(read_rgb(path), *frame)
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
                  expert_names=per_names, weights=vx.identities, runtime=vx.runtime,
                  frame=list(frame) if frame else None, min_face_frac=getattr(vx.detector, "min_face_frac", 0.0))
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
