"""Signals, windows and a windower feed shared by the streaming tests (imported as a plain module)."""

from __future__ import annotations

import numpy as np

from synctva_ros.config import WindowingConfig
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.windowing.windower import UtteranceWindower

SR = 16000


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced, amplitude- and pitch-modulated signal with noise (exercises pitch, jitter, formants)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * t) ** 2
    x = env * (0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase))
    x[(t % 1.1) > 0.9] *= 0.02  # pauses
    return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def stream(cache, x: np.ndarray, t0: float, chunk: int = 480) -> None:
    """Feed ``x`` to ``cache.on_audio`` in ``chunk``-sample pieces, the first sample at ``t0`` s."""
    for i in range(0, x.size, chunk):
        cache.on_audio(t0 + i / SR, x[i:i + chunk], SR)


def window(x: np.ndarray, t0: float, a: int, b: int, frames: list[TimedFrame] | None = None) -> UtteranceWindow:
    """The window of samples ``[a, b)`` of ``x`` streamed from ``t0`` s."""
    return UtteranceWindow(start=t0 + a / SR, end=t0 + b / SR, transcript="hi", audio=x[a:b].copy(),
                           sample_rate=SR, audio_start=t0 + a / SR, frames=frames or [])


def camera_frames(t0: float, seconds: float, fps: float = 10.0) -> list[TimedFrame]:
    """Random ``(48, 64, 3)`` uint8 frames at ``fps`` from ``t0`` s."""
    rng = np.random.default_rng(3)
    return [TimedFrame(t0 + i / fps, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
            for i in range(int(seconds * fps))]


def windower_windows(cache, x: np.ndarray, t0: float, bounds: list[tuple[float, float]], chunk: int = 512):
    """Feed continuous audio through an UtteranceWindower whose sink is ``cache``; return it and its windows."""
    w = UtteranceWindower(WindowingConfig(vad_enabled=False), SR, sink=cache)
    out = []
    pending = sorted(bounds, key=lambda b: b[1])
    for i in range(0, x.size, chunk):
        stamp = t0 + i / SR
        w.add_audio(stamp, x[i:i + chunk], SR)
        while pending and t0 + pending[0][1] <= stamp:  # final transcript as soon as the utterance ends
            s, e = pending.pop(0)
            w.add_transcript("words", t0 + s, t0 + e, True, stamp=stamp)
        out.extend(w.poll(stamp + chunk / SR))
    out.extend(w.flush())
    return w, out


def relative_difference(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``|got - ref|`` relative to each column's largest ``|ref|``."""
    return np.abs(got - ref) / (np.abs(ref).max(axis=0) + 1e-3)
