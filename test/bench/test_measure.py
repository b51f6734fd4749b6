"""The streaming feed of the benchmark (sensor-time order) and its latency percentiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synctva_ros.backends.switching import SwitchingBackend
from synctva_ros.backends.torch_backend import TorchBackend
from synctva_ros.bench.measure import backend_factories, percentiles, ready_as_named, select_backends, stream_into
from synctva_ros.config import ModelConfig, load_config
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.model.synctva import SyncTVA


class _Recorder:
    """Records what a StreamingFeatureCache would be fed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, int]] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def on_audio(self, t: float, x: np.ndarray, sr: int) -> None:
        self.events.append(("audio", t, x.size))

    def on_frame(self, t: float, image: np.ndarray) -> None:
        self.events.append(("frame", t, image.size))


def test_stream_into_feeds_in_sensor_time_order() -> None:
    sr, start = 16000, 50.0
    frames = [TimedFrame(start + j / 20, np.zeros((4, 4, 3), np.uint8)) for j in range(20)]  # 20 fps in the window
    w = UtteranceWindow(start=start, end=start + 1.0, transcript="hi", frames=frames,
                        audio=np.ones(sr, np.float32), sample_rate=sr, audio_start=start)
    rec = _Recorder()
    stream_into(rec, w, chunk_s=0.1)
    assert rec.resets == 1
    times = [t for _, t, _ in rec.events]
    assert times == sorted(times)
    audio = [(t, n) for kind, t, n in rec.events if kind == "audio"]
    assert audio[0] == (pytest.approx(start - 1.0), sr)  # 1 s of audio before the utterance
    assert audio[-1] == (pytest.approx(start + 1.0), int(0.3 * sr))  # late_s after it
    assert sum(n for _, n in audio[1:-1]) == sr  # the window's own audio, in 0.1 s chunks
    assert [t for kind, t, _ in rec.events if kind == "frame"] == [f.stamp for f in frames]


def test_percentiles() -> None:
    p = percentiles([float(x) for x in range(1, 101)])
    assert p["n"] == 100 and p["mean"] == pytest.approx(50.5)
    assert p["p50"] == pytest.approx(np.percentile(np.arange(1, 101), 50))
    assert p["p50"] <= p["p95"] <= p["p99"] <= 100


def test_a_failed_engine_build_is_not_measured_under_the_engines_name() -> None:
    # issue 14 item 10: bench labelled the onnxruntime/torch fallback "tensorrt fp16" when the build failed
    torch.manual_seed(0)
    model = SyncTVA(ModelConfig(hidden=8, heads=2, graph_layers=1), {"text": 6, "audio": 5, "visual": 4}).eval()
    torch_fp32 = TorchBackend(model)

    def fail():
        raise RuntimeError("engine build failed: no GPU")

    unavailable: dict[str, str] = {}
    failed = SwitchingBackend(torch_fp32, fail, primary_name="tensorrt")
    assert not ready_as_named(failed, "tensorrt fp16", unavailable, timeout_s=30)
    assert unavailable == {"tensorrt fp16": "tensorrt build failed (engine build failed: no GPU); it would have "
                                            "served torch"}
    built = SwitchingBackend(torch_fp32, lambda: TorchBackend(model, precision="bf16"), primary_name="tensorrt")
    assert ready_as_named(built, "tensorrt fp16", unavailable, timeout_s=30) and len(unavailable) == 1
    assert ready_as_named(torch_fp32, "torch fp32", unavailable)
    # a row whose backend fell back at start (onnxruntime could not load: create_backend serves torch)
    assert not ready_as_named(torch_fp32, "onnxruntime", unavailable)
    assert unavailable["onnxruntime"] == "onnxruntime did not start (see the log); it would have served torch"
    assert not ready_as_named(torch_fp32, "torch cuda graphs", unavailable)


def test_select_backends_keeps_the_named_rows_and_says_which_are_not_here() -> None:
    factories = [("torch fp32", lambda: "a"), ("onnxruntime", lambda: "b"), ("torch cuda fp16", lambda: "c")]
    unavailable = {"tensorrt": "not installed"}
    assert select_backends(factories, None, unavailable) == factories
    assert select_backends(factories, [" ", ""], unavailable) == factories
    chosen = select_backends(factories, ["torch cuda fp16 ", "torch fp32", "tensorrt fp16", "onnx"], unavailable)
    assert [n for n, _ in chosen] == ["torch fp32", "torch cuda fp16"]  # the factories' order, not the request's
    assert set(unavailable) == {"tensorrt", "onnx"}  # tensorrt fp16 is already explained by "tensorrt"
    assert unavailable["onnx"].startswith("asked for with --backends, not a backend of this machine")


def test_backend_factories_name_what_this_machine_lacks() -> None:
    torch.manual_seed(0)
    model = SyncTVA(ModelConfig(hidden=8, heads=2, graph_layers=1), {"text": 6, "audio": 5, "visual": 4}).eval()

    class Pipe:  # what backend_factories reads of a pipeline before make() is called
        manifest: dict = {}

    Pipe.model = model
    unavailable: dict[str, str] = {}
    names = [n for n, _ in backend_factories(load_config("demo"), Pipe(), unavailable)]
    assert names[:4] == ["torch fp32", "torch bf16", "onnxruntime", "onnxruntime int8"]
    if torch.cuda.is_available():
        assert {"torch cuda fp32", "torch cuda fp16", "torch cuda graphs"} <= set(names)
        assert ("onnxruntime cuda" in names) != ("onnxruntime cuda" in unavailable)
    else:
        assert "torch cuda fp32" not in names and "cuda" in unavailable
    assert ("tensorrt fp16" in names) != ("tensorrt" in unavailable)
