"""The runtime facial-expression expert: RGB frame -> faces with box, track id, MELD probabilities, embedding.

Pipeline per frame: :func:`~.detect.find_faces` (detector, or the whole image when it is a face crop; with
tracking and ``detect_every`` > 1 only on scheduled frames, the tracked faces carried by O-net in between:
:mod:`.schedule`) -> :class:`~.track.IouTracker` ids -> each face cropped as its expert was trained -> expert(s)
(in onnxruntime by default, :mod:`.runtime`) -> probabilities
mapped one to one onto MELD's classes (FER2013/face-api names: angry -> anger, disgusted/disgust -> disgust,
fear(ful) -> fear, happy -> joy, sad -> sadness, surprise(d) -> surprise, neutral -> neutral).

Experts (``experts=``): ``"fer"`` (mini-Xception, :class:`~.expression.MiniXception`), ``"face_api"``
(:class:`~.expression.FaceApiExpressionNet`) or both, whose class log-probabilities are averaged (a product
of experts, renormalised). Crops: fer's own preprocessing (square box around the detection grown by
``fer_margin`` of its side on each side, zero padding outside the image, grey, 64x64 bilinear, [-1, 1]);
face-api's (the box as detected, zero-padded to a centred square, 112x112 bilinear RGB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from .detect import FaceDetector, find_faces, make_detector
from .expression import FACE_API_CLASSES, FER_CLASSES
from .loaders import load_face_api_expression, load_fer_expression
from .runtime import DEFAULT_RUNTIME, NetRunner, make_runner
from .schedule import ScheduledFaces
from .track import IouTracker

__all__ = ["MELD_ORDER", "FACE_TO_MELD", "EXPERTS", "DEFAULT_EXPERTS", "FaceExpression", "VisualExpert", "to_meld",
           "fer_input", "face_api_input"]

#: MELD's class order (``synctva_ros.datasets.meld.MELD_CLASSES``; repeated here: features/ sits below datasets/).
MELD_ORDER = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
#: Face-expert class name -> MELD class (one to one).
FACE_TO_MELD = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "joy", "sad": "sadness",
                "surprise": "surprise", "neutral": "neutral", "disgusted": "disgust", "fearful": "fear",
                "surprised": "surprise"}
EXPERTS = ("fer", "face_api")
#: Default: face-api alone (on ../shared/data/faces with MTCNN: weighted F1 66.6; the ensemble 66.5, fer 44.5).
DEFAULT_EXPERTS = ("face_api",)


def to_meld(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Reorder ``(..., 7)`` probabilities over ``classes`` (an expert's names) to :data:`MELD_ORDER`."""
    idx = [list(classes).index(next(c for c in classes if FACE_TO_MELD[c] == m)) for m in MELD_ORDER]
    return probs[..., idx]


@dataclass
class FaceExpression:
    """One face in one frame.

    ``box``: x1, y1, x2, y2 in image pixels; ``probs``: ``(7,)`` over :data:`MELD_ORDER`; ``embedding``: the
    expert's penultimate features (fer 128-d, face-api 256-d, concatenated fer then face-api when both);
    ``per_expert``: each expert's own MELD-ordered probabilities.
    """

    box: tuple[float, float, float, float]
    track_id: int
    score: float
    source: str
    probs: np.ndarray
    embedding: np.ndarray
    per_expert: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def area(self) -> float:
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)


def _square_crop(image: np.ndarray, cx: float, cy: float, side: float, out: int) -> np.ndarray:
    """A ``side``-pixel square centred at (cx, cy), zero outside the image, resized to ``out`` x ``out``."""
    s = max(int(round(side)), 1)
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    h, w = image.shape[:2]
    pad = [max(0, -y0), max(0, y0 + s - h), max(0, -x0), max(0, x0 + s - w)]
    patch = image[max(y0, 0):min(y0 + s, h), max(x0, 0):min(x0 + s, w)]
    if any(pad):
        patch = cv2.copyMakeBorder(patch, *pad, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(patch, (out, out), interpolation=cv2.INTER_LINEAR)


def fer_input(image: np.ndarray, box: Sequence[float], margin: float = 0.1) -> np.ndarray:
    """fer's input for one face.

    Shapes:
        ``image`` ``(H, W, 3)`` uint8 RGB -> ``(1, 64, 64)`` float32 grey in [-1, 1].
    """
    x1, y1, x2, y2 = box[:4]
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    grey = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    g = _square_crop(grey, (x1 + x2) / 2, (y1 + y2) / 2, side, 64).astype(np.float32)
    return (g / 255.0 * 2.0 - 1.0)[None]


def face_api_input(image: np.ndarray, box: Sequence[float], margin: float = 0.0) -> np.ndarray:
    """face-api's input for one face.

    Shapes:
        ``image`` ``(H, W, 3)`` uint8 RGB -> ``(3, 112, 112)`` float32 RGB in [0, 255].
    """
    x1, y1, x2, y2 = box[:4]
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    rgb = _square_crop(np.ascontiguousarray(image[..., :3]), (x1 + x2) / 2, (y1 + y2) / 2, side, 112)
    return rgb.astype(np.float32).transpose(2, 0, 1)


class VisualExpert:
    """Faces and their expressions in RGB frames.

    Args:
        detector: a detector name (:data:`~.detect.DETECTORS`) or instance.
        experts: which expression experts (subset of :data:`EXPERTS`), ensembled when several.
        fer_margin, face_api_margin: crop margins (fraction of the box side on each side).
        tracker: IoU tracker for ids (a new one by default).
        accept_crops: take an image without a detection that looks like a face crop as one face
            (:func:`~.detect.find_faces`); False for camera frames.
        detect_every: with tracking, run the full detector on every ``detect_every``-th processed frame and
            carry the tracked faces in between (:class:`~.schedule.ScheduledFaces`; 1 = detect every frame).
        fps: processed frames per second, for the detection slots (``features.face_fps``).
        runtime: how the expression networks run (:data:`~.runtime.FACE_RUNTIMES`); a detector given by name
            runs its networks the same way.
        detector_settings: keyword arguments for a detector given by name (e.g. ``min_face_frac``).

    Raises:
        ValueError: unknown expert, runtime or detector setting, ``detect_every < 1``; FaceWeightsMissing:
            weights not installed.
    """

    def __init__(self, detector: str | FaceDetector = "mtcnn", experts: Sequence[str] = DEFAULT_EXPERTS,
                 fer_margin: float = 0.1, face_api_margin: float = 0.0, tracker: IouTracker | None = None,
                 accept_crops: bool = True, detect_every: int = 1, fps: float = 5.0, runtime: str = DEFAULT_RUNTIME,
                 detector_settings: dict | None = None) -> None:
        bad = [e for e in experts if e not in EXPERTS]
        if bad or not experts:
            raise ValueError(f"unknown experts {bad} (known: {EXPERTS})")
        if isinstance(detector, str):
            settings = {"runtime": runtime, **(detector_settings or {})} if detector == "mtcnn" else \
                dict(detector_settings or {})
            self.detector = make_detector(detector, **settings)
        else:
            self.detector = detector
        self.experts = tuple(experts)
        self.fer_margin, self.face_api_margin = fer_margin, face_api_margin
        self.tracker = tracker or IouTracker()
        self.accept_crops = accept_crops
        self.schedule = ScheduledFaces(self.detector, self.tracker, detect_every, fps, accept_crops)
        self.nets: dict[str, NetRunner] = {}
        self.identities: dict[str, dict] = {}
        for name in self.experts:
            net, ident = load_fer_expression() if name == "fer" else load_face_api_expression()
            shape = (1, 1, 64, 64) if name == "fer" else (1, 3, 112, 112)
            self.nets[name] = make_runner(net, runtime, shape, key=f"{name}:{':'.join(ident.files.values())}",
                                          method="forward_features")
            self.identities[name] = ident.as_dict()
        self.runtime = self.nets[self.experts[0]].runtime

    def reset(self) -> None:
        """Forget every track and the detection schedule (ids keep counting up)."""
        self.tracker.reset()
        self.schedule.reset()

    @property
    def embedding_dim(self) -> int:
        return sum({"fer": 128, "face_api": 256}[e] for e in self.experts)

    def classify(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray,
                                                                                       dict[str, np.ndarray]]:
        """Expressions of given face boxes.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            boxes: ``(x1, y1, x2, y2)`` per face, pixels.

        Returns:
            ``(probs (N, 7) over MELD_ORDER, embeddings (N, embedding_dim), {expert: (N, 7)}``).
        """
        n = len(boxes)
        if n == 0:
            return np.zeros((0, 7), np.float32), np.zeros((0, self.embedding_dim), np.float32), {}
        logps, embs, per = [], [], {}
        for name in self.experts:
            if name == "fer":
                x = np.stack([fer_input(image, b, self.fer_margin) for b in boxes])
                classes = FER_CLASSES
            else:
                x = np.stack([face_api_input(image, b, self.face_api_margin) for b in boxes])
                classes = FACE_API_CLASSES
            logits, emb = self.nets[name](x)
            z = logits.astype(np.float64) - logits.max(1, keepdims=True)
            lp = to_meld(z - np.log(np.exp(z).sum(1, keepdims=True)), classes)
            per[name] = np.exp(lp).astype(np.float32)
            logps.append(lp)
            embs.append(emb)
        mean = np.mean(logps, 0)
        probs = np.exp(mean - mean.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        return probs.astype(np.float32), np.concatenate(embs, 1).astype(np.float32), per

    def __call__(self, image: np.ndarray, track: bool = True, stamp: float | None = None) -> list[FaceExpression]:
        """Faces of one frame, best detection first.

        Args:
            image: ``(H, W, 3)`` uint8 RGB (a frame or a face crop).
            track: update the tracker (ids persist across calls) and follow the detection schedule
                (``detect_every``); False: the full detector on this image alone, id 0 (single photographs).
            stamp: the frame's sensor time, seconds, for the detection schedule (None: evenly spaced frames).

        Raises:
            ValueError: not an RGB uint8 image.
        """
        if track:
            faces, ids = self.schedule(image, stamp)
        else:
            faces = find_faces(image, self.detector, self.accept_crops)
            ids = [0] * len(faces)
        boxes = [f.as_list() for f in faces]
        probs, embs, per = self.classify(image, boxes)
        return [FaceExpression(tuple(b), i, f.score, f.source, probs[k], embs[k], {e: p[k] for e, p in per.items()})
                for k, (b, i, f) in enumerate(zip(boxes, ids, faces))]
