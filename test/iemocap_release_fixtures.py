"""A tiny IEMOCAP release (``IEMOCAP_full_release`` layout) generated from real data for the tests.

Transcripts, speakers and labels are real IEMOCAP turns from the COSMIC export
(``../shared/data/iemocap/train.jsonl``, sessions 1-4). The export has no session 5, so a session 5
dialogue reuses a session 4 dialogue's turns under a ``Ses05`` name. Per dialogue:

* ``sentences/wav/{dialog}/{utt}.wav``: the transcript spoken by espeak-ng
  (:func:`synctva_ros.datasets.speech.render_speech`, the speaker's voice), 16 kHz mono PCM as IEMOCAP's;
* ``dialog/EmoEvaluation/{dialog}.txt``: blocks in utterance-name order (F turns, then M turns; not time
  order), with header and annotator lines; ``dialog/transcriptions/{dialog}.txt`` in time order;
* ``dialog/avi/DivX/{dialog}.avi``: MPEG-4 Part 2 (DivX's codec) at ``video_fps``, written with PyAV, two
  actors side by side (F left, M right): while a turn is spoken its speaker's half shows a face photograph
  from ``../shared/data/faces`` of the turn's emotion (a different photograph per turn), every other half
  and moment is flat grey.

Turns follow each other with 0.35 s gaps; no start or end falls within 2 ms of a frame time. The first
dialogue of the first session also holds a turn labelled ``xxx`` (kept out by the reader) and a
``M: [BREATHING]`` noise line; its second dialogue's second turn has no wav.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from meld_raw_fixtures import DATA, _face_frame, _faces

from synctva_ros.datasets.speech import render_speech

#: IEMOCAP label -> face-photograph class (MELD names, as meld_raw_fixtures._faces keys them).
_FACE_CLASS = {"hap": "joy", "exc": "joy", "sad": "sadness", "neu": "neutral", "ang": "anger", "fru": "disgust"}
GREY = 128


@dataclass
class Turn:
    """One written turn: IEMOCAP utterance name, times (s), label, transcript, speaker and what was written."""

    name: str
    dialogue: str
    start: float
    end: float
    label: str
    text: str
    speaker: str
    face: Path
    wav_samples: int = 0  # 0: no wav written


@dataclass
class ReleaseLayout:
    """What :func:`make_iemocap_release` wrote (under ``root``)."""

    root: Path
    size: int
    video_fps: int
    turns: dict[str, list[Turn]] = field(default_factory=dict)  # dialogue -> every turn, time order
    sessions: dict[str, int] = field(default_factory=dict)  # dialogue -> session
    video_frames: dict[str, int] = field(default_factory=dict)  # dialogue -> frames in its avi

    def kept(self, dialogue: str) -> list[Turn]:
        """The dialogue's turns of the six classes, time order (what the reader keeps)."""
        return [t for t in self.turns[dialogue] if t.label != "xxx"]

    def frame(self, turn: Turn | None) -> np.ndarray:
        """The frame shown while ``turn`` is spoken (``None``: between turns), ``(size, 2 * size, 3)`` RGB."""
        img = np.full((self.size, 2 * self.size, 3), GREY, np.uint8)
        if turn is not None:
            x = 0 if turn.speaker == "F" else self.size
            img[:, x:x + self.size] = _face_frame(turn.face, (self.size, self.size))
        return img


def _write_wav(path: Path, x: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def _write_avi(path: Path, layout: ReleaseLayout, turns: list[Turn], seconds: float) -> int:
    import av

    n = int(np.ceil(seconds * layout.video_fps))
    with av.open(str(path), "w", format="avi") as c:
        v = c.add_stream("mpeg4", rate=layout.video_fps)
        v.height, v.width = layout.size, 2 * layout.size
        v.pix_fmt, v.bit_rate = "yuv420p", 3_000_000
        for i in range(n):
            t = i / layout.video_fps
            on = next((u for u in turns if u.start <= t < u.end), None)
            vf = av.VideoFrame.from_ndarray(layout.frame(on), format="rgb24")
            vf.pts = i
            c.mux(v.encode(vf))
        c.mux(v.encode(None))
    return n


def _off_grid(t: float, fps: int) -> float:
    """``t`` (4 decimals, as IEMOCAP writes times) moved off the frame times ``i / fps`` by at least 2 ms."""
    t = round(t, 4)
    while abs(t * fps - round(t * fps)) * 1000 / fps < 2.0:
        t = round(t + 0.0031, 4)
    return t


def make_iemocap_release(root: Path, sessions: tuple[int, ...] = (1, 5), dialogues: int = 2, per_dialogue: int = 4,
                         max_words: int = 8, size: int = 160, video_fps: int = 10) -> ReleaseLayout:
    """Write ``dialogues`` dialogues of ``per_dialogue`` kept turns per session under ``root``.

    Dialogue ``j`` of session ``n`` is the ``j``-th impro (even ``j``) or script (odd ``j``) dialogue of
    session ``min(n, 4)`` of the export, renamed to session ``n``. Its first ``per_dialogue`` turns of at most
    ``max_words`` words are written, except ``Ses01F_impro01``, whose first turns are taken as they come (the
    export's order can then be compared). The extra ``xxx`` turn is the next short turn of that dialogue.
    """
    export: dict[str, list[dict]] = {}
    for line in open(DATA / "iemocap" / "train.jsonl", encoding="utf-8"):
        r = json.loads(line)
        export.setdefault(r["dialogue_id"], []).append(r)
    faces, used = _faces(), {}
    layout = ReleaseLayout(root, size, video_fps)
    for si, n in enumerate(sessions):
        src = f"Ses0{min(n, 4)}"
        impro = [d for d in export if d.startswith(src) and "impro" in d]
        script = [d for d in export if d.startswith(src) and "script" in d]
        sdir = root / f"Session{n}"
        for sub in ("dialog/EmoEvaluation/Categorical", "dialog/transcriptions", "dialog/avi/DivX"):
            (sdir / sub).mkdir(parents=True, exist_ok=True)
        for j in range(dialogues):
            source = (impro if j % 2 == 0 else script)[j // 2]
            dialogue = f"Ses0{n}" + source[5:]
            rows = export[source]
            if source != "Ses01F_impro01":
                rows = [r for r in rows if len(r["text"].split()) <= max_words]
            rows = rows[:per_dialogue + 1]
            extra = si == 0 and j == 0
            labels = [r["label"] for r in rows[:per_dialogue]]
            if extra:  # the xxx turn goes third (time order)
                labels.insert(2, "xxx")
                rows = rows[:2] + [rows[per_dialogue]] + rows[2:per_dialogue]
            (sdir / "sentences" / "wav" / dialogue).mkdir(parents=True, exist_ok=True)
            count = {"F": 0, "M": 0}
            turns, cursor = [], 0.6137
            for k, (r, label) in enumerate(zip(rows[:len(labels)], labels)):
                spk = r["speaker"]
                name = f"{dialogue}_{spk}{count[spk]:03d}"
                count[spk] += 1
                speech = render_speech(r["text"], spk, None, 16000)
                start = _off_grid(cursor, video_fps)
                end = _off_grid(start + speech.size / 16000, video_fps)
                cls = _FACE_CLASS.get(label, "surprise")
                used[cls] = used.get(cls, -1) + 1
                turn = Turn(name, dialogue, start, end, label, r["text"].strip(), spk,
                            faces[cls][used[cls] % len(faces[cls])])
                if not (si == 0 and j == 1 and k == 1):  # the second dialogue's second turn has no wav
                    _write_wav(sdir / "sentences" / "wav" / dialogue / f"{name}.wav", speech, 16000)
                    turn.wav_samples = speech.size
                turns.append(turn)
                cursor = end + 0.35
            layout.turns[dialogue], layout.sessions[dialogue] = turns, n
            with open(sdir / "dialog" / "EmoEvaluation" / f"{dialogue}.txt", "w", encoding="utf-8") as fh:
                fh.write("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n")
                for t in sorted(turns, key=lambda t: t.name):
                    fh.write(f"[{t.start:.4f} - {t.end:.4f}]\t{t.name}\t{t.label}\t[2.5000, 3.0000, 2.5000]\n"
                             f"C-E2:\tNeutral;\t()\nC-E3:\tFrustration;\t()\nC-F1:\tNeutral;\t(curious)\n"
                             f"A-E3:\tval 3; act 2; dom  2;\t()\nA-F1:\tval 2; act 3; dom  3;\t()\n\n")
            (sdir / "dialog" / "EmoEvaluation" / "Categorical" / f"{dialogue}_e1_cat.txt").write_text(
                f"{turns[0].name} :Neutral state; ()\n", encoding="utf-8")
            with open(sdir / "dialog" / "transcriptions" / f"{dialogue}.txt", "w", encoding="utf-8") as fh:
                for k, t in enumerate(turns):
                    fh.write(f"{t.name} [{t.start:08.4f}-{t.end:08.4f}]: {t.text}\n")
                    if extra and k == 0:
                        fh.write("M: [BREATHING]\n")
            layout.video_frames[dialogue] = _write_avi(sdir / "dialog" / "avi" / "DivX" / f"{dialogue}.avi",
                                                       layout, turns, cursor + 0.5)
    return layout
