"""Visual features: a torchvision ResNet up to global pooling, per sampled frame (paper Sec. 3.1).

The paper encodes video frames with ResNet-50 (ImageNet). Here frames of the utterance
window are sampled at ``fps`` (at most ``max_frames``), optionally cropped to the largest
face found by OpenCV's bundled Haar cascade (``haarcascade_frontalface_default.xml``,
with a margin), resized to ``image_size``, ImageNet-normalised and encoded; each frame
is one visual node whose time is its stamp relative to the window.

Weights: ImageNet weights cannot be downloaded on every machine, so the weights are
read from a file (a torchvision ``state_dict`` saved with ``torch.save``; its sha256 is
part of the identity). Without a weights file the extractor is **unavailable**
(:func:`visual_weights_available` is False and the constructor raises
:class:`VisualWeightsUnavailable`): the visual branch then stays off, never running
on random weights.

Backend: the trunk runs in torch on the extractor's device unless a backend serves it
(:attr:`ResNetVisual.runner`, set by :func:`synctva_ros.backends.visual_encoder.serve_visual_encoder`
for ``runtime.backend`` onnxruntime/tensorrt; this layer does not import the backends).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from synctva_ros.features.base import FeatureExtractor
from synctva_ros.core.batch import ModalityFeatures
from synctva_ros.core.hashing import file_sha256
from synctva_ros.features.torchvision_compat import ensure_torchvision

__all__ = ["ResNetVisual", "VisualWeightsUnavailable", "visual_weights_available", "sample_frames", "window_frames",
           "node_times",
           "FaceCropper", "IMAGENET_MEAN", "IMAGENET_STD"]

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class VisualWeightsUnavailable(FileNotFoundError):
    """No backbone weight file is installed: the visual branch must stay off."""


def visual_weights_available(path: str | os.PathLike[str] | None) -> bool:
    """True when ``path`` names an existing weight file."""
    return bool(path) and Path(os.path.expanduser(str(path))).is_file()


def window_frames(window: Any, fps: float, max_frames: int) -> list[Any]:
    """The frames of an :class:`~synctva_ros.core.window.UtteranceWindow` that a visual extractor encodes
    (:func:`sample_frames` over their stamps, in seconds); ``[]`` when the window has none."""
    frames = list(window.frames)
    if not frames:
        return []
    return [frames[i] for i in sample_frames([f.stamp for f in frames], window.start, window.end, fps, max_frames)]


def node_times(offsets_s: Sequence[float], duration_s: float) -> np.ndarray:
    """``(N,)`` float32 node times in [0, 1]: each offset from the window start (seconds) over the window's
    duration (seconds), clipped; 0.5 for every node of a window of zero duration."""
    if duration_s > 0:
        return np.clip(np.asarray(offsets_s, np.float64) / duration_s, 0.0, 1.0).astype(np.float32)
    return np.full(len(offsets_s), 0.5, np.float32)


def sample_frames(stamps: Sequence[float], start: float, end: float, fps: float, max_frames: int) -> list[int]:
    """Indices of the frames to encode.

    Target times are ``start + (k + 0.5) / fps`` for ``k = 0 .. ceil((end - start) * fps) - 1``
    (at least one); when there are more than ``max_frames`` targets, ``max_frames`` of them
    are spread evenly. Each target takes the nearest frame; duplicates are dropped.

    Args:
        stamps: frame stamps in seconds, ascending.
        start, end: window bounds in seconds.
        fps: sampling rate in frames per second (> 0).
        max_frames: most frames returned (>= 1).

    Returns:
        Ascending frame indices (empty when ``stamps`` is empty).
    """
    if not len(stamps):
        return []
    st = np.asarray(stamps, dtype=np.float64)
    n = max(1, int(math.ceil(max(end - start, 0.0) * fps)))
    targets = start + (np.arange(n) + 0.5) / fps
    targets = np.minimum(targets, end) if end > start else np.full(1, start)
    if n > max_frames:
        targets = targets[np.linspace(0, n - 1, max_frames).round().astype(int)]
    idx = sorted({int(np.abs(st - t).argmin()) for t in targets})
    return idx


class FaceCropper:
    """Largest-face crop with OpenCV's bundled Haar cascade.

    Args:
        margin: fraction of the face box added on each side.
        min_size: smallest face side in pixels.

    ``__call__(image (H, W, 3) uint8 RGB) -> (crop (h, w, 3) uint8, found: bool)``; without a
    face the whole image is returned with ``found=False``.

    Raises:
        RuntimeError: OpenCV without ``CascadeClassifier`` (OpenCV 5 wheels); FileNotFoundError:
            the bundled cascade file is missing.
    """

    def __init__(self, margin: float = 0.25, min_size: int = 24) -> None:
        import cv2  # deferred: OpenCV is needed only with features.face_crop and a visual branch (~0.5 s to import)

        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved the Haar "
                               "cascades out of the main package); install opencv-python-headless<5 or set "
                               "features.face_crop to false")
        path = os.path.join(getattr(getattr(cv2, "data", None), "haarcascades", ""),
                            "haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise FileNotFoundError(f"OpenCV Haar cascade not found at {path}")
        self.margin = float(margin)
        self.min_size = int(min_size)

    def box(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """``(x0, y0, x1, y1)`` pixel box of the largest face plus margin, clipped to the image, or None."""
        import cv2  # deferred: see __init__ (already imported there, so free here)

        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        faces = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                               minSize=(self.min_size, self.min_size))
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
        mx, my = int(w * self.margin), int(h * self.margin)
        hh, ww = image.shape[:2]
        return max(0, x - mx), max(0, y - my), min(ww, x + w + mx), min(hh, y + h + my)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        b = self.box(image)
        if b is None:
            return image, False
        x0, y0, x1, y1 = b
        return image[y0:y1, x0:x1], True


def _to_input(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to ``size``, centre-crop ``size``², ImageNet-normalise -> ``(3, size, size)``."""
    import cv2  # deferred: OpenCV is needed only when a visual branch runs (~0.5 s to import)

    h, w = image.shape[:2]
    s = size / min(h, w)
    nh, nw = max(size, int(round(h * s))), max(size, int(round(w * s)))
    img = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    img = img[y0:y0 + size, x0:x0 + size].astype(np.float32) / 255.0
    img = (img - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(img.transpose(2, 0, 1))


class ResNetVisual(FeatureExtractor):
    """Frame embeddings from a torchvision ResNet (``resnet18`` ... ``resnet152``) up to global pooling.

    Args:
        encoder: torchvision ResNet factory name (``resnet50`` gives 2048-d, ``resnet18`` 512-d).
        weights: path to a torchvision state dict (``torch.save(model.state_dict())``).
        fps: frames sampled per second of window; max_frames: most frames per window.
        face_crop: crop the largest face before encoding.
        image_size: encoder input side in pixels.
        device: torch device.

    Shapes:
        ``__call__``: window -> ``x`` ``(N, F)`` with ``N <= max_frames``; ``t`` = frame stamp relative to the window.

    Raises:
        VisualWeightsUnavailable: no weight file at ``weights``.
        ValueError: ``encoder`` is not a torchvision ResNet.
        RuntimeError: the state dict does not fit the architecture.
    """

    modality = "visual"

    def __init__(self, encoder: str = "resnet50", weights: str | os.PathLike[str] | None = None,
                 fps: float = 2.0, max_frames: int = 8, face_crop: bool = True, image_size: int = 224,
                 device: str | torch.device = "cpu") -> None:
        if not visual_weights_available(weights):
            raise VisualWeightsUnavailable(
                f"no weights for visual encoder '{encoder}' (features.visual_weights = {weights!r}); "
                "the visual branch stays off. Save torchvision ImageNet weights with "
                "torch.save(torchvision.models.resnet50(weights='IMAGENET1K_V2').state_dict(), path) "
                "on a machine with internet access and set features.visual_weights to that path.")
        if not encoder.startswith("resnet") and not encoder.startswith("wide_resnet"):
            raise ValueError(f"visual encoder must be a torchvision ResNet, got '{encoder}'")
        ensure_torchvision()
        import torchvision  # deferred: must follow ensure_torchvision() (CPU torch next to a CUDA torchvision)

        factory = getattr(torchvision.models, encoder, None)
        if factory is None:
            raise ValueError(f"torchvision has no model '{encoder}'")
        model = factory(weights=None)
        self.weights = str(Path(os.path.expanduser(str(weights))).resolve())
        state = torch.load(self.weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        model.load_state_dict(state)
        self.dim = int(model.fc.in_features)
        model.fc = torch.nn.Identity()
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.encoder = encoder
        self.fps = float(fps)
        self.max_frames = int(max_frames)
        self.image_size = int(image_size)
        self.face_crop = bool(face_crop)
        self._cropper = FaceCropper() if face_crop else None
        self._sha: str | None = None
        #: Frames where face cropping found no face (the whole frame was used).
        self.no_face = 0
        #: What runs the trunk instead of torch (``None``: torch): ``runner(x (K, 3, S, S) float32) -> (K, F)``
        #: float32 numpy, e.g. onnxruntime (:func:`synctva_ros.backends.visual_encoder.serve_visual_encoder`).
        self.runner: Any = None

    def identity(self) -> dict[str, Any]:
        """``{"kind", "encoder", "weights_sha256", "fps", "max_frames", "face_crop", "image_size", "dim"}``."""
        if self._sha is None:
            self._sha = file_sha256(self.weights)
        return {"kind": "torchvision_resnet", "encoder": self.encoder, "weights_sha256": self._sha,
                "fps": self.fps, "max_frames": self.max_frames, "face_crop": self.face_crop,
                "face_detector": "opencv_haar_frontalface_default" if self.face_crop else None,
                "image_size": self.image_size, "normalisation": "imagenet", "dim": self.dim}

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(3, S, S)`` float32 network input (face crop when enabled)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
        if self._cropper is not None:
            image, found = self._cropper(image)
            if not found:
                self.no_face += 1
        return _to_input(image, self.image_size)

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``K`` RGB images ``(H, W, 3)`` uint8 -> ``(K, F)`` float32 embeddings (:meth:`preprocess`, then
        :meth:`encode_inputs`)."""
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        return self.encode_inputs(np.stack([self.preprocess(im) for im in images]))

    @torch.inference_mode()
    def encode_inputs(self, x: np.ndarray) -> np.ndarray:
        """The trunk on network inputs: ``(K, 3, S, S)`` float32 (ImageNet-normalised, ``S = image_size``) ->
        ``(K, F)`` float32 embeddings, by :attr:`runner` when a backend serves the trunk (the same embeddings within
        its start-up parity), else by the torch model on :attr:`device`."""
        if self.runner is not None:
            return np.asarray(self.runner(np.ascontiguousarray(x, np.float32)), np.float32)
        return self.model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()

    def extract_frames(self, frames: Sequence[np.ndarray] | np.ndarray, times_s: Sequence[float] | np.ndarray,
                       duration_s: float) -> ModalityFeatures | None:
        """Visual nodes of frames already sampled from a recording (a MELD.Raw clip, an IEMOCAP segment, a bag's
        window), as :meth:`~synctva_ros.features.faces.embedding.FaceEmbeddingVisual.extract_frames`.

        Args:
            frames: ``(K, H, W, 3)`` uint8 RGB (or a list of such images).
            times_s: ``(K,)`` frame times in seconds from the recording's start, ascending.
            duration_s: the recording's length in seconds (node time = ``time / duration``, clipped to [0, 1]).

        Returns:
            ``x`` ``(N, F)`` float32, ``t`` ``(N,)``, ``N = min(K, max_frames)`` (more frames are thinned evenly);
            ``None`` for no frames.
        """
        k = len(frames)
        if k == 0:
            return None
        idx = np.arange(k) if k <= self.max_frames else np.linspace(0, k - 1, self.max_frames).round().astype(int)
        x = self.encode_images([frames[i] for i in idx])
        return ModalityFeatures(x.astype(np.float32), node_times(np.asarray(times_s, np.float64)[idx], duration_s))

    def __call__(self, window: Any) -> ModalityFeatures | None:
        """Visual nodes of an :class:`~synctva_ros.core.window.UtteranceWindow` (``None`` without frames)."""
        chosen = window_frames(window, self.fps, self.max_frames)
        if not chosen:
            return None
        x = self.encode_images([f.image for f in chosen])
        return ModalityFeatures(x.astype(np.float32),
                                node_times([f.stamp - window.start for f in chosen], window.end - window.start))
