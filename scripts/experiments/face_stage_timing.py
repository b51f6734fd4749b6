"""Cost of the face stage per 640x480 frame with one face, on one core (issue 9's 15 ms target).

    OMP_NUM_THREADS=1 python scripts/experiments/face_stage_timing.py [PHOTO]

A labelled photograph from ../shared/data/faces pasted into a black 640x480 frame (as the staged demo does);
MTCNN detection (camera rule: no crop fallback) and the face-api expression expert, timed apart and together
(median of 50 after 3 warm-up calls, torch on one thread). Prints milliseconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from synctva_ros.evaluation.faces import read_rgb
from synctva_ros.features.faces.detect import find_faces
from synctva_ros.features.faces.experts import VisualExpert

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT.parent / "shared" / "data" / "faces" / "images" / "Ai_Sugiyama_0001.jpg"


def median_ms(fn, n: int = 50) -> float:
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000)


def main(photo: Path = PHOTO) -> None:
    torch.set_num_threads(1)
    img = read_rgb(photo)
    frame = np.zeros((480, 640, 3), np.uint8)
    y, x = (480 - img.shape[0]) // 2, (640 - img.shape[1]) // 2
    frame[y:y + img.shape[0], x:x + img.shape[1]] = img
    vx = VisualExpert(accept_crops=False)
    for _ in range(3):
        vx(frame)
    boxes = [f.as_list() for f in find_faces(frame, vx.detector, False)]
    print(f"faces {len(boxes)}; detect {median_ms(lambda: find_faces(frame, vx.detector, False)):.1f} ms; "
          f"expert {median_ms(lambda: vx.classify(frame, boxes)):.1f} ms; total {median_ms(lambda: vx(frame)):.1f} ms")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else PHOTO)
