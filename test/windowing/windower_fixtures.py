"""Helpers of the windower tests: small frames, a windowing configuration, camera and microphone feeds."""

from __future__ import annotations

import numpy as np

from synctva_ros.config import WindowingConfig
from synctva_ros.windowing.windower import UtteranceWindower

SR = 16000


def img(v: int = 0) -> np.ndarray:
    return np.full((4, 6, 3), v % 256, np.uint8)


def cfg(**kw) -> WindowingConfig:
    c = WindowingConfig(vad_enabled=False, frame_keep_hz=0.0)
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def feed_frames(w: UtteranceWindower, t0: float, t1: float, fps: float = 10.0) -> list[float]:
    stamps = [t0 + i / fps for i in range(int(round((t1 - t0) * fps)) + 1)]
    for t in stamps:
        w.add_frame(t, img(int(t * 10)))
    return stamps


def feed_audio(w: UtteranceWindower, t0: float, t1: float, chunk_s: float = 0.02, value: float = 0.1) -> None:
    n = int(round(chunk_s * SR))
    for k in range(int(round((t1 - t0) / chunk_s))):
        w.add_audio(t0 + k * chunk_s, np.full(n, value, np.float32), SR)
