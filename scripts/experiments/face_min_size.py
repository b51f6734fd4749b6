"""Which face sizes ``features.face_min_size`` still finds on a 640x480 camera frame.

    OMP_NUM_THREADS=1 python scripts/experiments/face_min_size.py [N_PHOTOS] [FRAC ...]

The first N labelled photographs of ../shared/data/faces, each shrunk to a square of S pixels (the face box
MTCNN then draws is about S high) and pasted into a black 640x480 frame; for each S, how many of them MTCNN
finds with each smallest-face setting (0 = the 40 px floor alone). MTCNN's smallest face is not a hard edge:
P-net still proposes faces somewhat smaller than its window.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from synctva_ros.evaluation.faces import read_rgb
from synctva_ros.features.faces.detect import MtcnnDetector

ROOT = Path(__file__).resolve().parents[2]
FACES = ROOT.parent / "shared" / "data" / "faces"
SIZES = (30, 36, 42, 48, 56, 64, 80)


def main(n: int = 40, fracs: tuple[float, ...] = (0.0, 0.1)) -> None:
    torch.set_num_threads(1)
    dets = {f: MtcnnDetector(min_face_frac=f) for f in fracs}
    rows = list(csv.DictReader(open(FACES / "labels.csv", encoding="utf-8")))[:n]
    photos = [read_rgb(FACES / r["image"]) for r in rows]
    print(f"{n} photographs per size; found with face_min_size " + ", ".join(
        f"{f} (searched from {dets[f].skipped_levels(480, 640)[1]:.0f} px)" for f in fracs))
    for s in SIZES:
        found = {f: 0 for f in fracs}
        for p in photos:
            frame = np.zeros((480, 640, 3), np.uint8)
            frame[200:200 + s, 300:300 + s] = cv2.resize(p, (s, s), interpolation=cv2.INTER_AREA)
            for f, d in dets.items():
                found[f] += bool(d.detect(frame))
        print(f"{s:3d} px: " + ", ".join(f"{found[f]}/{n}" for f in fracs))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 40, tuple(float(x) for x in a[1:]) or (0.0, 0.1))
