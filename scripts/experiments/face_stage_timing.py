"""Cost of the face stage per 640x480 frame with one face, on one core (issue 9's 15 ms target).

    OMP_NUM_THREADS=1 taskset -c 1 python scripts/experiments/face_stage_timing.py [PHOTO] [ROUNDS]

A labelled photograph from ../shared/data/faces pasted into a black 640x480 frame (as the staged demo does),
moving by one pixel per frame. Configurations, timed interleaved (each round runs every configuration once, in
a shuffled order, so a background load hits them alike; torch on one thread):

* ``old``: the face stage before issue 9's cost work: torch, 40 px smallest face, full detector on every frame;
* ``onnxruntime``: the networks in onnxruntime;
* ``+min face 0.1``: and ``features.face_min_size`` 0.1 (one pyramid level skipped on 640x480);
* ``new``: and ``features.face_detect_every`` 3 (the defaults of ``build_face_evidence``).

Per configuration, in milliseconds: the parts (full detection, the O-net carry of one face, the expression
network on one face; medians) and the whole per processed frame (:meth:`FaceEvidenceExtractor.observe` with
stamps at 5 Hz: median of detected frames, of carried frames, mean, 90th percentile and maximum over all frames),
once as wall-clock time and once as the CPU time of the calling thread (``time.thread_time``; torch and
onnxruntime both run on it with one thread), which a load on the same core inflates much less than the wall
clock. The load average is printed before and after: the numbers are only comparable within one run.

Last, whether the new defaults keep up with a 30 fps camera even when every frame is processed
(``features.face_fps`` 30, detection slots of 0.1 s): 3 s of frames, back to back, against the 3 s they span.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from synctva_ros.evaluation.faces import in_frame, read_rgb
from synctva_ros.features.faces.detect import find_faces
from synctva_ros.features.faces.evidence import FaceEvidenceExtractor, build_face_evidence

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT.parent / "shared" / "data" / "faces" / "images" / "Ai_Sugiyama_0001.jpg"
FPS = 5.0
CONFIGS = {
    "old": dict(detect_every=1, min_face_frac=0.0, runtime="torch"),
    "onnxruntime": dict(detect_every=1, min_face_frac=0.0, runtime="onnxruntime"),
    "+min face 0.1": dict(detect_every=1, min_face_frac=0.1, runtime="onnxruntime"),
    "new": dict(),
}


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall-clock ms, this thread's CPU ms) of one call."""
    t, c = time.perf_counter(), time.thread_time()
    fn()
    return (time.perf_counter() - t) * 1000, (time.thread_time() - c) * 1000


def report(title: str, parts: dict, frames: dict, col: int) -> None:
    print(f"{title}\n{'configuration':15s} {'detect':>7s} {'carry':>6s} {'expert':>6s} | frame: {'detected':>8s} "
          f"{'carried':>7s} {'mean':>6s} {'p90':>6s} {'max':>6s}")
    for name in parts:
        p = {k: [v[col] for v in vs] for k, vs in parts[name].items()}
        f = {k: [v[col] for v in vs] for k, vs in frames[name].items()}
        every = f["detected"] + f["carried"]
        carried = f"{np.median(f['carried']):7.1f}" if f["carried"] else f"{'-':>7s}"
        print(f"{name:15s} {np.median(p['detect']):7.1f} {np.median(p['carry']):6.1f} {np.median(p['expert']):6.1f} "
              f"| {np.median(f['detected']):14.1f} {carried} {np.mean(every):6.1f} {np.percentile(every, 90):6.1f} "
              f"{np.max(every):6.1f}   detected {len(f['detected'])}, carried {len(f['carried'])}")


def main(photo: Path = PHOTO, rounds: int = 60) -> None:
    torch.set_num_threads(1)
    frame = in_frame(read_rgb(photo), 640, 480)
    stages: dict[str, FaceEvidenceExtractor] = {}
    for name, settings in CONFIGS.items():
        ext = build_face_evidence(True, FPS, "largest", **settings)
        assert ext is not None, "face weights not installed (make setup)"
        stages[name] = ext
    box = [f.as_list() for f in find_faces(frame, stages["old"].expert.detector, False)]
    assert len(box) == 1, f"expected one face in {photo}, found {len(box)}"
    parts: dict[str, dict[str, list[tuple[float, float]]]] = {k: {"detect": [], "carry": [], "expert": []}
                                                             for k in stages}
    frames: dict[str, dict[str, list[tuple[float, float]]]] = {k: {"detected": [], "carried": []} for k in stages}
    for ext in stages.values():  # warm-up
        for i in range(3):
            ext.observe(-1.0 + i / FPS, frame)
    print(f"load average before: {os.getloadavg()[0]:.2f} (CPUs {os.cpu_count()}, this process on "
          f"{sorted(os.sched_getaffinity(0))})")
    rng = np.random.default_rng(0)
    for r in range(rounds):
        img = np.roll(frame, r % 7 - 3, axis=1)
        for name in rng.permutation(list(stages)):
            ext = stages[name]
            vx, p = ext.expert, parts[name]
            p["detect"].append(timed(lambda: find_faces(img, vx.detector, False)))
            p["carry"].append(timed(lambda: vx.detector.refine(img, box)))
            p["expert"].append(timed(lambda: vx.classify(img, box)))
            before = vx.schedule.counts["carried"]
            ms = timed(lambda: ext.observe(r / FPS, img))
            frames[name]["carried" if vx.schedule.counts["carried"] > before else "detected"].append(ms)
    print(f"load average after: {os.getloadavg()[0]:.2f}; {rounds} frames per configuration, one face, 640x480")
    report("wall-clock ms", parts, frames, 0)
    report("CPU ms of the calling thread", parts, frames, 1)
    cam = build_face_evidence(True, 30.0, "largest")
    assert cam is not None
    for i in range(3):
        cam.observe(-1.0 + i / 30, frame)
    t0, per = time.perf_counter(), []
    for i in range(90):
        per.append(timed(lambda: cam.observe(i / 30, np.roll(frame, i % 7 - 3, axis=1)))[0])
    took = time.perf_counter() - t0
    print(f"30 fps camera, every frame processed (face_fps 30, new defaults): 90 frames (3.0 s) took {took:.2f} s; "
          f"per frame median {np.median(per):.1f} ms, max {np.max(per):.1f} ms (budget 33.3 ms)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else PHOTO, int(sys.argv[2]) if len(sys.argv) > 2 else 60)
