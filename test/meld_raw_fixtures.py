"""Clips in MELD.Raw's exact layout, generated from real data for the tests.

``{root}/{split}_sent_emo.csv`` holds real MELD rows (copied verbatim from ``../shared/data/meld``);
``{root}/{clip folder}/dia{D}_utt{U}.mp4`` (``train_splits``, ``dev_splits_complete``) is an H.264 +
AAC clip whose audio track is the transcript spoken by espeak-ng
(:func:`synctva_ros.datasets.speech.render_speech`, 48 kHz stereo as MELD's) and whose frames show a
face photograph from ``../shared/data/faces`` labelled with the utterance's emotion (as the demo bag
stages its camera), written with PyAV. Transcripts of 3-6 words keep the clips at about 1-2 s; frames
are ``size`` pixels at ``video_fps``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synctva_ros.datasets.meld_raw import MELD_RAW_DIRS
from synctva_ros.datasets.speech import render_speech

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: face-photograph label -> MELD class
_FACE_LABEL = {"happiness": "joy", "neutral": "neutral", "surprise": "surprise", "anger": "anger",
               "sadness": "sadness", "disgust": "disgust", "fear": "fear"}


@dataclass
class RawLayout:
    """What :func:`make_meld_raw` wrote: ids with a good clip, without a file, with a corrupt file."""

    root: Path
    split: str
    written: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)  # utterance id -> audio seconds written
    frames: dict[str, int] = field(default_factory=dict)  # utterance id -> video frames written
    labels: dict[str, str] = field(default_factory=dict)
    faces: dict[str, Path] = field(default_factory=dict)  # utterance id -> face photograph shown


def _faces() -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    with open(DATA / "faces" / "labels.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["emotion"] in _FACE_LABEL:
                out.setdefault(_FACE_LABEL[r["emotion"]], []).append(DATA / "faces" / r["image"])
    return out


def _face_frame(path: Path, size: tuple[int, int]) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey JPEGs come back as 3 equal channels (BGR)
    return np.ascontiguousarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA)[..., ::-1])


def write_clip(path: Path, speech: np.ndarray, speech_rate: int, frame: np.ndarray, video_fps: int = 15,
               audio_rate: int = 48000) -> int:
    """Write an mp4 (H.264 yuv420p + AAC stereo at ``audio_rate``) of a still ``frame`` for the speech's length.

    Returns:
        Video frames written.
    """
    import av

    n_frames = max(1, int(np.ceil(speech.size / speech_rate * video_fps)))
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=video_fps)
        v.height, v.width = frame.shape[:2]
        v.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=audio_rate, layout="stereo")
        for i in range(n_frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            c.mux(v.encode(vf))
        c.mux(v.encode(None))
        pcm = np.round(np.clip(speech, -1, 1) * 32767).astype(np.int16)[None]
        af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        af.sample_rate, af.pts = speech_rate, 0
        res = av.AudioResampler(format="fltp", layout="stereo", rate=audio_rate)
        for f in res.resample(af) + res.resample(None):
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    return n_frames


def make_meld_raw(root: Path, split: str = "dev", source: str = "dev", n: int = 7, min_words: int = 3,
                  max_words: int = 6, dialogues: int = 2, missing: int = 1, corrupt: int = 1,
                  size: tuple[int, int] = (160, 160), video_fps: int = 15,
                  per_dialogue: int | None = None) -> RawLayout:
    """Write ``n`` utterances of MELD split ``source`` (``min_words`` .. ``max_words`` words, from the first
    ``dialogues`` dialogues that have such rows, at most ``per_dialogue`` of each) as MELD.Raw ``split``.

    The last ``missing`` rows get no clip; the ``corrupt`` rows before them get a truncated mp4 (its first
    600 bytes). Face photographs are taken in file order per class, so runs are deterministic.
    """
    src = DATA / "meld" / f"{source}_sent_emo.csv"
    with open(src, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames
        rows = [r for r in reader if min_words <= len(r["Utterance"].split()) <= max_words]
    dids = list(dict.fromkeys(r["Dialogue_ID"] for r in rows))[:dialogues]
    taken: dict[str, int] = {}
    picked = []
    for r in rows:
        d = r["Dialogue_ID"]
        if d in dids and len(picked) < n and taken.get(d, 0) < (per_dialogue or n):
            taken[d] = taken.get(d, 0) + 1
            picked.append(r)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{split}_sent_emo.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(picked)
    clips = root / MELD_RAW_DIRS[split][0]
    clips.mkdir(exist_ok=True)
    faces, used = _faces(), {}
    out = RawLayout(root, split)
    for i, r in enumerate(picked):
        uid = f"{int(r['Dialogue_ID'])}_{int(r['Utterance_ID'])}"
        out.labels[uid] = r["Emotion"]
        if i >= len(picked) - missing:
            out.missing.append(uid)
            continue
        path = clips / f"dia{int(r['Dialogue_ID'])}_utt{int(r['Utterance_ID'])}.mp4"
        k = used[r["Emotion"]] = used.get(r["Emotion"], -1) + 1
        face = out.faces[uid] = faces[r["Emotion"]][k % len(faces[r["Emotion"]])]
        speech = render_speech(r["Utterance"], r["Speaker"], None, 16000)
        out.frames[uid] = write_clip(path, speech, 16000, _face_frame(face, size), video_fps)
        out.durations[uid] = speech.size / 16000
        if i >= len(picked) - missing - corrupt:
            path.write_bytes(path.read_bytes()[:600])
            out.corrupt.append(uid)
        else:
            out.written.append(uid)
    return out
