"""The staged camera of test bags (``synctva_ros.bags.staged_faces``): labelled face photographs with each
utterance's emotion, chosen deterministically, written into the bag and recorded beside it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from synctva_ros.bags.make_bag import TOPIC_IMAGE, make_bag, read_meld_csv
from synctva_ros.bags.reader import ground_truth_from_bag, read_bag
from synctva_ros.bags.staged_faces import (choose_faces, default_faces_csv, fit_image, frame_owner, read_staged,
                                           staged_frames)
from synctva_ros.core.codecs import image_to_rgb
from synctva_ros.evaluation.faces import read_rgb

FACES_CSV = Path(os.environ.get("SYNCTVA_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data")) \
    / "faces" / "labels.csv"
DEMO_CSV = Path(__file__).resolve().parents[2] / "data" / "demo" / "meld_dev_sample.csv"
needs_faces = pytest.mark.skipif(not FACES_CSV.is_file(), reason=f"no labelled faces at {FACES_CSV}")


@needs_faces
def test_the_shared_face_set_is_found() -> None:
    assert default_faces_csv() is not None and default_faces_csv().samefile(FACES_CSV)


@needs_faces
def test_choice_is_deterministic_per_utterance_and_matches_the_label() -> None:
    items = [(r.uid, r.emotion) for r in read_meld_csv(DEMO_CSV)]
    a = choose_faces(items, FACES_CSV, seed=0)
    assert a == choose_faces(list(reversed(items)), FACES_CSV, seed=0)  # independent of the other rows
    assert set(a) == {u for u, _ in items}  # every MELD class has photographs
    assert all(a[u]["label"] == lab and Path(a[u]["image"]).is_file() for u, lab in items)
    b = choose_faces(items, FACES_CSV, seed=1)
    assert any(a[u]["image"] != b[u]["image"] for u, _ in items)


def test_fit_and_timing() -> None:
    big = np.full((600, 300, 3), 200, np.uint8)
    out = fit_image(big, (640, 480))
    assert out.shape == (480, 640, 3) and out[:, :200].max() == 0 and out[240, 320].tolist() == [200] * 3
    small = fit_image(np.full((10, 10, 3), 9, np.uint8), (64, 48))
    assert (small == 9).sum() == 300  # never enlarged
    starts = [0.5, 3.0, 6.0]
    assert [frame_owner(t, starts, 0.8) for t in (0.0, 0.2, 2.5, 2.7, 5.0, 5.7, 99.0)] == [0, 0, 0, 1, 1, 2, 2]
    fallback = np.zeros((48, 64, 3), np.uint8)
    assert staged_frames({}, ["a", "b"], (64, 48), fallback)[1] is fallback


@needs_faces
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_make_bag_stages_a_labelled_face_per_utterance(tmp_path: Path) -> None:
    out = tmp_path / "bag"
    summary = make_bag(DEMO_CSV, out, max_utterances=3, fps=5.0, size=(640, 480), faces=FACES_CSV)
    staged = read_staged(out)
    assert staged["staged"] and staged["utterances"] == summary["staged_faces"]
    truth = ground_truth_from_bag(out)
    assert [staged["utterances"][t.utterance_id]["label"] for t in truth] == [t.label for t in truth]
    frames = [image_to_rgb(m.msg.height, m.msg.width, m.msg.encoding, m.msg.is_bigendian, m.msg.step, m.msg.data)
              for m in read_bag(out, [TOPIC_IMAGE])]
    stamps = [(m.timestamp_ns - summary["start_ns"]) * 1e-9 for m in read_bag(out, [TOPIC_IMAGE])]
    for k, t in enumerate(truth):
        mid = (summary["bounds"][k][0] + summary["bounds"][k][1]) / 2
        i = int(np.argmin(np.abs(np.asarray(stamps) - mid)))
        want = fit_image(read_rgb(staged["utterances"][t.utterance_id]["image"]), (640, 480))
        assert any(np.array_equal(frames[i], np.roll(want, dx, axis=1)) for dx in (-1, 0, 1))
    assert read_staged(tmp_path) is None
