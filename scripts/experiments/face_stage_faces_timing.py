"""Cost of the face stage per 640x480 frame with 1, 2 and 4 faces in view, on one core (issue 11).

    OMP_NUM_THREADS=1 taskset -c 1 python scripts/experiments/face_stage_faces_timing.py [ROUNDS]

The per-face ``hri_msgs/Expression`` output publishes the expression of every tracked face, which the face
stage already computes for the window's evidence (every face of a processed frame goes through the expression
network in one batch): what it costs is what each additional face costs the stage, plus turning a frame's
observations into message fields (:func:`~synctva_ros.streaming.face_expressions.frame_expressions`).

Frames: labelled photographs of ../shared/data/faces (each checked to show one face alone) scaled to 150 px and
placed in a black 640x480 frame: one in the middle, two side by side, four in a 2x2 grid
(:func:`~synctva_ros.evaluation.two_faces.grid`), moving by one pixel per frame. One face stage per
configuration with the node's defaults (``build_face_evidence``: onnxruntime, smallest face 0.1, full detection
on every 3rd processed frame), stamps at 5 Hz; the configurations are timed interleaved (every round runs each
once, in a shuffled order, so a background load hits them alike). Milliseconds per configuration: the parts
(full detection, the O-net carry of the faces, the expression network on the faces, the fields of all faces;
medians) and the whole per processed frame (:meth:`FaceEvidenceExtractor.observe`: median of detected and of
carried frames, mean, 90th percentile, max), as wall-clock time and as the calling thread's CPU time
(``time.thread_time``). The cost per additional face is the slope of a least-squares line through the three
means. The load average is printed: the numbers compare only within one run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from synctva_ros.evaluation.faces import read_face_labels, read_rgb
from synctva_ros.evaluation.two_faces import compose, grid
from synctva_ros.features.faces.detect import find_faces
from synctva_ros.features.faces.evidence import FaceEvidenceExtractor, build_face_evidence
from synctva_ros.streaming.face_expressions import frame_expressions

ROOT = Path(__file__).resolve().parents[2]
LABELS = ROOT.parent / "shared" / "data" / "faces" / "labels.csv"
FPS = 5.0
COUNTS = (1, 2, 4)


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall-clock ms, this thread's CPU ms, result) of one call."""
    t, c = time.perf_counter(), time.thread_time()
    out = fn()
    return (time.perf_counter() - t) * 1000, (time.thread_time() - c) * 1000, out


def single_face_photos(ext: FaceEvidenceExtractor, n: int) -> list[np.ndarray]:
    """The first ``n`` labelled photographs in which the detector finds exactly one face, placed alone."""
    out = []
    for path, _ in read_face_labels(LABELS)[0]:
        img = read_rgb(path)
        if len(find_faces(compose([img], grid(1)), ext.expert.detector, False)) == 1:
            out.append(img)
        if len(out) == n:
            return out
    raise SystemExit(f"fewer than {n} single-face photographs")


def main(rounds: int = 60) -> None:
    torch.set_num_threads(1)
    stages = {n: build_face_evidence(True, FPS, "largest") for n in COUNTS}
    assert all(s is not None for s in stages.values()), "face weights not installed (make setup)"
    photos = single_face_photos(stages[1], max(COUNTS))
    frames = {n: compose(photos[:n], grid(n)) for n in COUNTS}
    for n, ext in stages.items():  # warm-up; every face must be found
        found = [len(ext.observe(-1.0 + i / FPS, frames[n])) for i in range(3)]
        assert found[-1] == n, f"{n} faces placed, {found} found"
    parts = {n: {k: [] for k in ("detect", "carry", "expert", "fields")} for n in COUNTS}
    whole = {n: {"detected": [], "carried": []} for n in COUNTS}
    seen = {n: [] for n in COUNTS}
    print(f"load average before: {os.getloadavg()[0]:.2f} (CPUs {os.cpu_count()}, this process on "
          f"{sorted(os.sched_getaffinity(0))})")
    rng = np.random.default_rng(0)
    for r in range(rounds):
        for n in rng.permutation(COUNTS):
            n = int(n)
            ext, img = stages[n], np.roll(frames[n], r % 7 - 3, axis=1)
            boxes = [f.as_list() for f in find_faces(img, ext.expert.detector, False)]
            vx, p = ext.expert, parts[n]
            p["detect"].append(timed(lambda: find_faces(img, vx.detector, False))[:2])
            p["carry"].append(timed(lambda: vx.detector.refine(img, boxes))[:2])
            p["expert"].append(timed(lambda: vx.classify(img, boxes))[:2])
            before = vx.schedule.counts["carried"]
            wall, cpu, obs = timed(lambda: ext.observe(r / FPS, img))
            whole[n]["carried" if vx.schedule.counts["carried"] > before else "detected"].append((wall, cpu))
            seen[n].append(len(obs))
            p["fields"].append(timed(lambda: frame_expressions(obs, 3.32))[:2])
    print(f"load average after: {os.getloadavg()[0]:.2f}; {rounds} frames per configuration, 640x480, faces 150 px")
    for col, title in ((0, "wall-clock ms"), (1, "CPU ms of the calling thread")):
        print(f"\n{title}\n{'faces':>5s} {'found':>5s} {'detect':>7s} {'carry':>6s} {'expert':>6s} {'fields':>6s} | "
              f"frame: {'detected':>8s} {'carried':>7s} {'mean':>6s} {'p90':>6s} {'max':>6s}")
        means = []
        for n in COUNTS:
            p = {k: np.median([v[col] for v in vs]) for k, vs in parts[n].items()}
            d, c = [v[col] for v in whole[n]["detected"]], [v[col] for v in whole[n]["carried"]]
            every = d + c
            means.append(np.mean(every))
            print(f"{n:5d} {np.mean(seen[n]):5.2f} {p['detect']:7.1f} {p['carry']:6.1f} {p['expert']:6.1f} "
                  f"{p['fields']:6.2f} | {np.median(d):14.1f} {np.median(c):7.1f} {np.mean(every):6.1f} "
                  f"{np.percentile(every, 90):6.1f} {np.max(every):6.1f}   detected {len(d)}, carried {len(c)}")
        slope = np.polyfit(COUNTS, means, 1)[0]
        print(f"per additional face (slope of the means): {slope:.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
