"""How much carrying tracked faces between detections (``features.face_detect_every``) changes the face stage.

    OMP_NUM_THREADS=1 python scripts/experiments/face_carry_agreement.py [N_PHOTOS] [AMPLITUDE_PX] [EVERY]

No labelled video exists here, so each of the first N labelled photographs of ../shared/data/faces becomes a
3 s clip at the face stage's 5 Hz (15 frames): the photograph moves in a black 640x480 frame on a smooth path
(``AMPLITUDE_PX`` sideways, half that up and down, size +-10 %, one period per clip: at 40 px, up to about
17 px between processed frames). Each clip goes through the face stage twice, with the full detector on every
frame and with it on every EVERY-th frame (the tracked face carried by O-net in between), both with the camera
settings (``features.face_min_size`` 0.1, onnxruntime). Printed: frames carried; on carried frames, the IoU of
the carried box with the detected one and how often the two give the same class; per clip, how often the
window evidence (geometric mean over the clip, :func:`~synctva_ros.features.faces.evidence.aggregate`) gives
the same class, and its largest probability difference; and the accuracy against the photographs' labels of
both runs, per frame (largest face) and per clip (window evidence). Rows with a label MELD lacks are skipped.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from synctva_ros.evaluation.faces import LABEL_TO_MELD, read_rgb
from synctva_ros.features.faces.evidence import aggregate, build_face_evidence
from synctva_ros.features.faces.experts import MELD_ORDER
from synctva_ros.features.faces.track import iou

ROOT = Path(__file__).resolve().parents[2]
FACES = ROOT.parent / "shared" / "data" / "faces"
FPS, FRAMES = 5.0, 15


def clip(photo: np.ndarray, amplitude: float) -> list[np.ndarray]:
    """The photograph moving in a black 640x480 frame: ``FRAMES`` frames, one period of the path."""
    out = []
    for i in range(FRAMES):
        ph = 2 * np.pi * i / FRAMES
        s = 1.0 + 0.1 * np.sin(ph)
        img = cv2.resize(photo, (int(photo.shape[1] * s), int(photo.shape[0] * s)), interpolation=cv2.INTER_AREA)
        img = img[:480, :640]
        h, w = img.shape[:2]
        x0 = int(np.clip((640 - w) / 2 + amplitude * np.sin(ph), 0, 640 - w))
        y0 = int(np.clip((480 - h) / 2 + amplitude / 2 * np.sin(2 * ph), 0, 480 - h))
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[y0:y0 + h, x0:x0 + w] = img
        out.append(frame)
    return out


def main(n: int = 100, amplitude: float = 40.0, every: int = 3) -> None:
    torch.set_num_threads(1)
    full = build_face_evidence(True, FPS, "largest", detect_every=1)
    sched = build_face_evidence(True, FPS, "largest", detect_every=every)
    assert full is not None and sched is not None, "face weights not installed (make setup)"
    rows = [r for r in csv.DictReader(open(FACES / "labels.csv", encoding="utf-8"))
            if r["emotion"] in LABEL_TO_MELD][:n]
    ious, same_frame, same_window, dprob, carried, clips = [], [], [], [], 0, 0
    right: dict[str, dict[str, list[int]]] = {k: {"frame": [], "clip": []} for k in ("full", "sched")}
    for r in rows:
        label = MELD_ORDER.index(LABEL_TO_MELD[r["emotion"]])
        frames = clip(read_rgb(FACES / r["image"]), amplitude)
        for ext in (full, sched):
            ext.expert.reset()
        obs: dict[str, list] = {"full": [], "sched": []}
        for i, f in enumerate(frames):
            before = sched.expert.schedule.counts["carried"]
            a, b = full.observe(i / FPS, f), sched.observe(i / FPS, f)
            obs["full"] += a
            obs["sched"] += b
            for k, o in (("full", a), ("sched", b)):
                right[k]["frame"].append(int(bool(o) and np.argmax(max(o, key=lambda x: x.area).log_probs) == label))
            if sched.expert.schedule.counts["carried"] > before and a and b:
                carried += 1
                ia = max(a, key=lambda o: o.area)
                ib = max(b, key=lambda o: o.area)
                ious.append(iou(ia.box, ib.box))
                same_frame.append(int(np.argmax(ia.log_probs) == np.argmax(ib.log_probs)))
        ea, eb = aggregate(obs["full"]), aggregate(obs["sched"])
        for k, e in (("full", ea), ("sched", eb)):
            right[k]["clip"].append(int(e.probs is not None and np.argmax(e.probs) == label))
        if ea.probs is None or eb.probs is None:
            continue
        clips += 1
        same_window.append(int(np.argmax(ea.probs) == np.argmax(eb.probs)))
        dprob.append(float(np.abs(ea.probs - eb.probs).max()))
    c = sched.expert.schedule.counts
    print(f"{len(rows)} clips of {FRAMES} frames, amplitude {amplitude:.0f} px, detect every {every}: "
          f"scheduled run detected {c['detected']} frames ({c['lost']} forced by a lost face), carried {c['carried']}")
    print(f"carried frames with a face in both runs: {carried}; IoU carried vs detected box: median "
          f"{np.median(ious):.3f}, 5th percentile {np.percentile(ious, 5):.3f}; same class {np.mean(same_frame):.3f}")
    print(f"clips with a face in both: {clips}; window evidence same class {np.mean(same_window):.3f}, "
          f"max |dp| median {np.median(dprob):.4f}, max {np.max(dprob):.4f}")
    for k, what in (("full", "detect every frame"), ("sched", f"detect every {every}")):
        fr, cl = right[k]["frame"], right[k]["clip"]
        print(f"accuracy against the labels, {what}: per frame {np.mean(fr):.3f} ({len(fr)} frames), "
              f"per clip {np.mean(cl):.3f} ({len(cl)} clips)")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 100, float(a[1]) if len(a) > 1 else 40.0, int(a[2]) if len(a) > 2 else 3)
