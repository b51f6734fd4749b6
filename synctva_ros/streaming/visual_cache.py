"""Frame embeddings computed while the utterance goes on, looked up when its window closes.

Frames are encoded as they arrive, at ``visual_fps * oversample`` frames per second, on a fixed
grid of encoding ticks (embeddings cached by stamp, older than ``buffer_s`` dropped; a stamp more
than 1 s before the grid, e.g. a restarted bag, clears the cache). At close the batch rule
(:func:`~synctva_ros.features.visual.sample_frames`: targets at ``visual_fps``, at most
``max_frames``) picks the window's frames; each picked frame's embedding is taken from the cache
when that very frame was encoded (``visual_hit``), or, with ``exact=False`` (the cache's
``exact_visual=False``, default), from the nearest cached frame within half the encoding period
(``0.5 / (visual_fps * oversample)`` s; ``visual_near``); other picked frames are encoded at close
(``visual_miss``). Node times are always the picked frames' stamps, so they equal the batch
extractor's.

Face-expression encoders (:class:`~synctva_ros.features.faces.embedding.FaceEmbeddingVisual`,
``features.visual_encoder: face_api | fer | fer+face_api``) give a frame an embedding only when a face
is found in it: the cache then remembers "no face" for that frame too (:data:`NO_FACE`), a picked
frame without a face gives no node, and a window whose picked frames hold no face has no visual
modality (``None``), exactly as the batch extractor decides.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from synctva_ros.core.batch import ModalityFeatures
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.visual import ResNetVisual, node_times, sample_frames
from synctva_ros.streaming.stamp_store import StampStore

__all__ = ["VisualCache", "NO_FACE", "encode_frames"]

#: The cached value of a frame in which a face-expression encoder found no face (it gives no node).
NO_FACE = np.zeros(0, np.float32)


def encode_frames(ext: Any, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """One cache value per image: its ``(F_v,)`` embedding, or :data:`NO_FACE` (face encoders only).

    Args:
        ext: a visual extractor: a face-expression encoder (has ``embed_frames``, which returns the rows of
            the frames with a face and their indices) or a frame encoder (``encode_images``, one row each).
        images: ``K`` images ``(H, W, 3)`` uint8 RGB.

    Returns:
        ``K`` float32 arrays, each ``(F_v,)`` or ``(0,)``.
    """
    if hasattr(ext, "embed_frames"):
        x, kept = ext.embed_frames(list(images))
        out = [NO_FACE] * len(images)
        for row, i in zip(x, kept):
            out[int(i)] = np.asarray(row, np.float32)
        return out
    return [np.asarray(e, np.float32) for e in ext.encode_images(list(images))]


class VisualCache:
    """Embeddings of camera frames by stamp, encoded on a grid of ``fps * oversample`` ticks per second.

    Args:
        ext: the batch visual extractor (its ``fps``, ``max_frames`` and ``encode_images``, or a face
            encoder's ``embed_frames``, are used; see :func:`encode_frames`).
        stats: the cache's counters, incremented in place (``visual_hit``, ``visual_near``, ``visual_miss``).
        buffer_s: seconds of embeddings kept (before the newest frame).
        oversample: frames encoded per second = ``ext.fps * oversample``.
        exact: only use the embedding of the very frame the batch rule picks (False: the nearest
            cached frame within half the encoding period).
        gap_tolerance_s: slack, in seconds, before a stamp earlier than the encoding grid counts as time
            going back.

    Shapes:
        :meth:`add` ``image (H, W, 3)`` uint8 RGB; :meth:`features` -> ``x (N_v, F_v)`` float32 and
        ``t (N_v,)`` in [0, 1], as ``ext(window)``; with a face encoder ``N_v`` counts the picked frames
        with a face only.
    """

    def __init__(self, ext: ResNetVisual | Any, stats: Counter[str], *, buffer_s: float, oversample: float,
                 exact: bool, gap_tolerance_s: float) -> None:
        self.ext = ext
        self.stats = stats
        self.buffer_s = float(buffer_s)
        self.oversample = float(oversample)
        self.exact = bool(exact)
        self.gap_tolerance_s = float(gap_tolerance_s)
        #: ``(F_v,)`` embeddings by stamp on the encoding grid (sensor callbacks / worker vs the processing thread)
        self.store: StampStore[np.ndarray] = StampStore(1.0 / (ext.fps * self.oversample), self.buffer_s,
                                                       self.gap_tolerance_s)

    def __len__(self) -> int:
        """Embeddings cached now."""
        return len(self.store)

    def reset(self, gen: int) -> None:
        """Forget every embedding; frames of a generation other than ``gen`` are ignored from now on."""
        self.store.reset(gen)

    def due(self, stamp: float) -> bool:
        """Whether a frame at ``stamp`` s is due for encoding (advances the encoding grid when it is)."""
        return self.store.due(stamp)

    def add(self, stamp: float, image: np.ndarray, gen: int) -> None:
        """Encode the frame at ``stamp`` s (``(H, W, 3)`` uint8 RGB) and cache its embedding, unless the
        cache was reset (``gen`` no longer current) meanwhile; drops embeddings older than ``buffer_s``."""
        self.store.put(stamp, encode_frames(self.ext, [image])[0], gen)

    def features(self, window: UtteranceWindow) -> tuple[ModalityFeatures | None, str]:
        """Visual nodes of a closed window: the batch rule's frames, cached embeddings where there are.

        Returns:
            ``(features, how)``: ``(None, "none")`` for a window without frames, ``(None, "k/n cached, no
            face")`` when a face encoder found no face in any picked frame, else the nodes and
            ``"k/n cached"`` (``k`` of the ``n`` picked frames served from the cache).
        """
        ext = self.ext
        frames = list(window.frames)
        if not frames:
            return None, "none"
        idx = sample_frames([f.stamp for f in frames], window.start, window.end, ext.fps, ext.max_frames)
        chosen = [frames[i] for i in idx]
        found = self.store.lookup([f.stamp for f in chosen], 0.5 / (ext.fps * self.oversample), self.exact)
        embs: list[np.ndarray | None] = [e for e, _ in found]
        for _, how in found:
            if how != "miss":
                self.stats[f"visual_{how}"] += 1
        missing = [i for i, e in enumerate(embs) if e is None]
        if missing:
            self.stats["visual_miss"] += len(missing)
            new = encode_frames(ext, [chosen[i].image for i in missing])
            for i, e in zip(missing, new):
                embs[i] = e
        how = f"{len(chosen) - len(missing)}/{len(chosen)} cached"
        keep = [i for i, e in enumerate(embs) if e is not None and e.size]
        if not keep:
            return None, how + ", no face"
        x = np.stack([embs[i] for i in keep]).astype(np.float32)
        t = node_times([chosen[i].stamp - window.start for i in keep], window.end - window.start)
        return ModalityFeatures(x, t), how
