"""How often the speaker-face policy (``features.face_policy``) picks the speaker's face with two faces in view,
and what that does to the visual expert's accuracy on the speaker's label (issue 11).

    OMP_NUM_THREADS=1 python scripts/experiments/speaker_face_policy.py [N_PAIRS] [SEED] [OUT_JSON]

No recording of a conversation with two labelled faces exists here, so the frames are staged: N pairs of
labelled photographs of ../shared/data/faces (seed SEED): a speaker photograph drawn from all scorable ones and a
listener photograph with a different label, each first checked to show exactly one face when alone in the frame
at the smallest size used. Each pair is shown in a 640x480 frame (``synctva_ros.evaluation.two_faces``) in 9
conditions: 3 sizes (speaker face 200 px and listener 110 px; both 150 px; speaker 110 px and listener 200 px)
x 3 positions (speaker in the middle and listener 215 px to the side; both 140 px either side of the middle;
speaker 220 px to one side and listener 40 px to the other). Per pair one random mirror (speaker left or right)
and one random shift (+-10 px sideways, +-30 px up and down) apply to all 9 conditions (paired design).

A condition is one utterance window of 1 s: 5 frames at the face stage's 5 Hz (each shifted by one more pixel),
through the face stage with the node's defaults (MTCNN detection on every 3rd frame, tracking, face-api), the
expert reset before each window. From the window's observations: the speaker's track (the track whose boxes lie
mostly in the speaker's photograph), the track each policy picks (:func:`choose_track`), whether it is the
speaker's, and whether the window's evidence (:func:`aggregate` with that policy) has the speaker's label as its
most probable class; the same for the speaker's own track (what a perfect policy would give) and the listener's.

Printed: one row per condition, and the totals; with OUT_JSON, everything as JSON.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from synctva_ros.evaluation.faces import read_face_labels, read_rgb
from synctva_ros.evaluation.two_faces import POSITIONS, SIZES, Placement, compose, owner, speaker_listener
from synctva_ros.features.faces.detect import find_faces
from synctva_ros.features.faces.evidence import FACE_POLICIES, aggregate, build_face_evidence, choose_track
from synctva_ros.features.faces.experts import MELD_ORDER

ROOT = Path(__file__).resolve().parents[2]
LABELS = ROOT.parent / "shared" / "data" / "faces" / "labels.csv"
FPS, FRAMES = 5.0, 5


def label_of(obs: list, track: int, policy: str = "largest") -> str | None:
    """The most probable class of one track's evidence over the window (None: no such track)."""
    ev = aggregate([o for o in obs if o.track_id == track], policy)
    return None if ev.probs is None else MELD_ORDER[int(np.argmax(ev.probs))]


def window(ext, frame: np.ndarray, t0: float) -> list:
    """The observations of a 1 s window of the frame (5 frames at 5 Hz, moving one pixel per frame)."""
    ext.expert.reset()
    obs = []
    for k in range(FRAMES):
        obs += ext.observe(t0 + k / FPS, np.roll(frame, k, axis=1))
    return obs


def one_face_alone(ext, img: np.ndarray, side: int) -> bool:
    """Whether the detector finds exactly one face in the photograph alone, ``side`` px in the middle."""
    return len(find_faces(compose([img], [Placement(320, 240, side)]), ext.expert.detector, False)) == 1


def main(n_pairs: int = 300, seed: int = 0, out_json: str = "") -> None:
    torch.set_num_threads(1)
    ext = build_face_evidence(True, FPS, "largest")
    assert ext is not None, "face weights not installed (make setup)"
    rows, _ = read_face_labels(LABELS)
    rng = random.Random(seed)
    rng.shuffle(rows)
    smallest = min(min(s) for s in SIZES.values())
    ok: dict[Path, bool] = {}

    def usable(path: Path) -> bool:
        if path not in ok:
            ok[path] = one_face_alone(ext, read_rgb(path), smallest)
        return ok[path]

    pairs = []
    for spath, slab in rows:
        if len(pairs) == n_pairs:
            break
        if not usable(spath):
            continue
        cands = [(p, lab) for p, lab in rows if lab != slab]
        for lpath, llab in rng.sample(cands, 20):
            if usable(lpath):
                pairs.append((spath, slab, lpath, llab, rng.random() < 0.5, rng.uniform(-10, 10),
                              rng.uniform(-30, 30)))
                break
    print(f"{len(pairs)} pairs (photographs checked: {len(ok)}, of which one face alone at {smallest} px: "
          f"{sum(ok.values())}); speaker labels {dict(Counter(p[1] for p in pairs))}")
    conds = [(s, p) for s in SIZES for p in POSITIONS]
    res = {f"{s} / {p}": Counter() for s, p in conds}
    t0 = 0.0
    for i, (spath, slab, lpath, llab, mirror, dx, dy) in enumerate(pairs):
        imgs = [read_rgb(spath), read_rgb(lpath)]
        for s, p in conds:
            pl = speaker_listener(s, p, mirror, dx, dy)
            obs = window(ext, compose(imgs, pl), t0)
            t0 += 10.0
            r = res[f"{s} / {p}"]
            r["windows"] += 1
            votes: dict[int, Counter] = {}
            for o in obs:
                votes.setdefault(o.track_id, Counter())[owner(o.box, pl)] += 1
            whose = {t: v.most_common(1)[0][0] for t, v in votes.items()}
            sp = [t for t, w in whose.items() if w == 0]
            li = [t for t, w in whose.items() if w == 1]
            r["two_faces"] += bool(sp) and bool(li)
            for policy in FACE_POLICIES:
                tid = choose_track(obs, policy)
                r[f"{policy}_picks_speaker"] += whose.get(tid) == 0
                ev = aggregate(obs, policy)
                r[f"{policy}_correct"] += ev.probs is not None and MELD_ORDER[int(np.argmax(ev.probs))] == slab
            r["speaker_face_correct"] += bool(sp) and label_of(obs, sp[0]) == slab
            r["listener_face_says_speaker_label"] += bool(li) and label_of(obs, li[0]) == slab
        if (i + 1) % 50 == 0:
            print(f"  {i + 1} pairs done", flush=True)
    cols = ["largest_picks_speaker", "central_picks_speaker", "largest_correct", "central_correct",
            "speaker_face_correct", "listener_face_says_speaker_label", "two_faces"]
    print(f"\n{'condition':40s} " + " ".join(f"{c[:14]:>14s}" for c in cols) + "   (% of windows)")
    total = Counter()
    for name, r in res.items():
        total.update(r)
        print(f"{name:40s} " + " ".join(f"{100 * r[c] / r['windows']:14.1f}" for c in cols))
    print(f"{'all':40s} " + " ".join(f"{100 * total[c] / total['windows']:14.1f}" for c in cols))
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps({"pairs": len(pairs), "seed": seed, "conditions": {
            k: dict(v) for k, v in res.items()}, "speaker_labels": dict(Counter(p[1] for p in pairs))}, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, int(sys.argv[2]) if len(sys.argv) > 2 else 0,
         sys.argv[3] if len(sys.argv) > 3 else "")
