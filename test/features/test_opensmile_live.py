"""LiveOpenSmile: one openSMILE run over a stream written chunk by chunk (real openSMILE, real threads)."""

from __future__ import annotations

import threading
import time

import numpy as np
import opensmile
import pytest

from synctva_ros.features.opensmile_live import LiveOpenSmile, LiveOpenSmileError

SR = 16000


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.9 * t)
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / SR) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.7 * t) ** 2)
    x[(t % 1.3) > 1.0] *= 0.02
    return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_frames_equal_a_whole_signal_run_and_arrive_while_streaming() -> None:
    x = _signal(4.0)
    frames: dict[int, tuple[np.ndarray, float]] = {}
    seen_before_end = threading.Event()

    def on_frame(k: int, lld: np.ndarray, dur: float) -> None:
        frames[k] = (lld, dur)

    live = LiveOpenSmile("eGeMAPSv02", SR, on_frame)
    rng = np.random.default_rng(1)
    i = 0
    while i < x.size:  # irregular chunks, as a microphone driver delivers them
        n = int(rng.integers(50, 2000))
        live.write(x[i:i + n])
        i += n
        if i > 3 * SR and frames:
            seen_before_end.set()
    deadline = time.monotonic() + 5.0
    while max(frames, default=-1) < 250 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen_before_end.is_set() and max(frames) >= 250  # frames come before the stream ends
    live.close()
    live.close()  # idempotent
    ref = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                          feature_level=opensmile.FeatureLevel.LowLevelDescriptors).process_signal(x, SR)
    assert sorted(frames) == list(range(len(ref)))
    got = np.stack([frames[k][0] for k in range(len(ref))])
    np.testing.assert_array_equal(got, ref.to_numpy(np.float32))
    durs = (ref.index.get_level_values("end") - ref.index.get_level_values("start")).total_seconds().to_numpy()
    # durations too, except the last frame's, which the package stretches to the end of the signal
    np.testing.assert_allclose([frames[k][1] for k in range(len(ref) - 1)], durs[:-1], atol=1e-6)
    with pytest.raises(LiveOpenSmileError, match="closed"):
        live.write(x[:160])


def test_unknown_feature_set_is_a_clear_error() -> None:
    with pytest.raises(LiveOpenSmileError, match="cannot stream"):
        LiveOpenSmile("NoSuchSet", SR, lambda *a: None)
