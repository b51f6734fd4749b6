"""A staged camera for test bags: each utterance shows a labelled face photograph with the utterance's emotion.

MELD's video cannot be had here, so a bag made from MELD rows has no real face of the speaker. To exercise the
facial-expression expert end to end, :func:`~synctva_ros.bags.make_bag.make_bag` (``faces=LABELS.csv``) can show,
while each utterance is spoken, a photograph from a labelled face set (``../shared/data/faces``: header
``image,emotion``, read by :func:`~synctva_ros.evaluation.faces.read_face_labels`) whose label is the
utterance's MELD label. This is a **staged recording**: the face agrees with the label by construction, so the
visual accuracy it gives measures the face expert on those photographs, not a speaker's face in a conversation.

Choice (:func:`choose_faces`): per utterance, the photographs of its class sorted by path, one picked by a
:class:`random.Random` seeded with ``"<seed>:<utterance id>"`` (deterministic, and independent of the other
rows). Timing (:func:`frame_owner`): the photograph of utterance ``k`` is shown from half a gap before its
speech starts until half a gap before the next one starts (the first from the bag's start). Each photograph is
fitted into the frame (shrunk if larger, never enlarged), centred on black (:func:`fit_image`).

The choice is written next to the bag's ``metadata.yaml`` as :data:`STAGED_FACES_FILE` (:func:`write_staged`),
which the demo reads to print each utterance's face label.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from synctva_ros.config import package_root
from synctva_ros.datasets.splits import DEFAULT_DATA_DIR
from synctva_ros.evaluation.faces import read_face_labels, read_rgb

__all__ = ["STAGED_FACES_FILE", "StagedFace", "default_faces_csv", "choose_faces", "fit_image", "staged_frames",
           "frame_owner", "write_staged", "read_staged"]

#: File in the bag directory that records the staged faces.
STAGED_FACES_FILE = "staged_faces.json"

StagedFace = dict  # {"image": absolute path str, "label": MELD class}


def default_faces_csv() -> Path | None:
    """The shared face set's ``labels.csv``, or None when it is not on this machine.

    Searched: ``$SYNCTVA_DATA/faces``; ``../shared/data/faces`` beside the checkout (:func:`package_root`'s
    parent, as the tests find the shared data); :data:`~synctva_ros.datasets.splits.DEFAULT_DATA_DIR`
    ``/faces``.
    """
    cands = [Path(os.environ["SYNCTVA_DATA"]) / "faces"] if os.environ.get("SYNCTVA_DATA") else []
    cands += [package_root().parent / "shared" / "data" / "faces", DEFAULT_DATA_DIR / "faces"]
    for c in cands:
        if (c / "labels.csv").is_file():
            return c / "labels.csv"
    return None


def choose_faces(items: Sequence[tuple[str, str]], faces_csv: str | Path, seed: int = 0) -> dict[str, StagedFace]:
    """One photograph per utterance whose label is the utterance's.

    Args:
        items: ``[(utterance id, MELD class)]``.
        faces_csv: the face set's labels CSV.
        seed: the choice's seed.

    Returns:
        ``{utterance id: {"image": path, "label": MELD class}}``; an utterance whose class has no photograph
        is left out (its frames then show the previous utterance's face, or black).

    Raises:
        FileNotFoundError: no CSV; ValueError: a CSV without ``image,emotion``.
    """
    rows, _ = read_face_labels(faces_csv)
    by_class: dict[str, list[str]] = {}
    for path, label in rows:
        by_class.setdefault(label, []).append(str(path))
    out = {}
    for uid, label in items:
        pool = sorted(by_class.get(label, []))
        if pool:
            out[uid] = {"image": random.Random(f"{seed}:{uid}").choice(pool), "label": label}
    return out


def fit_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` centred in a black ``size = (width, height)`` frame, shrunk (area interpolation) if larger.

    Shapes:
        ``(h, w, 3)`` uint8 -> ``(height, width, 3)`` uint8.
    """
    # deferred: OpenCV only for the staged camera
    import cv2

    w, h = int(size[0]), int(size[1])
    scale = min(1.0, w / img.shape[1], h / img.shape[0])
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    out = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
    out[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img[..., :3]
    return out


def staged_frames(staged: Mapping[str, StagedFace], uids: Sequence[str], size: tuple[int, int],
                  fallback: np.ndarray) -> list[np.ndarray]:
    """The frame of each utterance (``uids`` order): its photograph fitted, else the previous one's (else
    ``fallback``)."""
    out, last = [], fallback
    for uid in uids:
        if uid in staged:
            last = fit_image(read_rgb(staged[uid]["image"]), size)
        out.append(last)
    return out


def frame_owner(t_s: float, starts_s: Sequence[float], gap_s: float) -> int:
    """Index of the utterance whose photograph is shown at ``t_s`` seconds (see the module's timing)."""
    k = int(np.searchsorted(np.asarray(starts_s) - gap_s / 2.0, t_s, side="right")) - 1
    return max(k, 0)


def write_staged(bag_dir: str | Path, staged: Mapping[str, StagedFace], faces_csv: str | Path, seed: int) -> Path:
    """Record the staged faces in ``bag_dir/`` :data:`STAGED_FACES_FILE`; returns its path."""
    path = Path(bag_dir) / STAGED_FACES_FILE
    path.write_text(json.dumps({"staged": True, "faces_csv": str(faces_csv), "seed": seed,
                                "utterances": dict(staged)}, indent=2, sort_keys=True) + "\n")
    return path


def read_staged(bag_dir: str | Path) -> dict[str, Any] | None:
    """The staged-faces record of a bag directory, None when the bag has none."""
    path = Path(bag_dir) / STAGED_FACES_FILE
    return json.loads(path.read_text()) if path.is_file() else None
