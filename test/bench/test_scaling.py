"""``synctva bench --scaling``: a tiny series on the demo checkpoint (the JSON's structure, what each point held, the
plot) and the CLI flags. No wall-time asserts: the checks are on what the windows held and what the stages found."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synctva_ros.bench.plot import plot_scaling
from synctva_ros.bench.scaling import (POINT_KEYS, SCALING_KEYS, TINY_SERIES, UNITS, _context_turns, face_frame,
                                       run_scaling)
from synctva_ros.cli import build_parser
from synctva_ros.config import load_config, resolve_path
from synctva_ros.datasets.speech import espeak_binary
from synctva_ros.features.faces.evidence import build_face_evidence
from synctva_ros.pipeline import EmotionPipeline


@pytest.fixture(scope="module")
def scaling(tmp_path_factory):
    try:
        espeak_binary()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    cache = tmp_path_factory.mktemp("scaling_cache")
    cfg = load_config("demo", {"runtime.checkpoint": str(resolve_path("models/meld_minilm")), "runtime.threads": 1,
                               "runtime.cache_dir": str(cache)})
    pipe = EmotionPipeline(cfg)
    try:
        yield run_scaling(pipe, cfg, "demo", TINY_SERIES, repeats=1), pipe
    finally:
        pipe.close()


def test_the_document_has_every_series_and_point(scaling) -> None:
    doc, pipe = scaling
    assert set(SCALING_KEYS) <= set(doc) and doc["config"] == "demo" and doc["mode"] == "streaming"
    assert doc["backend"] == pipe.backend_name == load_config("demo").runtime.backend
    assert list(doc["series"]) == ["utterance_s", "tokens", "faces", "camera_fps"]
    json.dumps(doc)  # plain JSON
    for name, s in doc["series"].items():
        assert s["unit"] == UNITS[name] and s["x"] == [float(x) for x in TINY_SERIES[name]]
        assert [p["x"] for p in s["points"]] == s["x"]
        for p in s["points"]:
            assert set(POINT_KEYS) <= set(p)
            lat = p["latency_s"]
            assert lat["n"] == 1 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
            assert {"text", "audio", "fusion"} <= set(p["stages_s"]) and p["stream_cpu_cores"] > 0
            assert 0 < p["close_cpu_s"]


def test_each_series_varies_what_it_says(scaling) -> None:
    doc, pipe = scaling
    s = doc["series"]
    utt = s["utterance_s"]["points"]
    assert [round(p["audio_s"], 3) for p in utt] == [1.0, 3.0]
    assert [p["frames"] for p in utt] == [15, 45]  # 15 fps
    assert utt[0]["encoder_tokens"] < utt[1]["encoder_tokens"]  # more speech, more words
    tok = s["tokens"]["points"]
    # 8 word pieces of utterance alone; 96 = the utterance's 64 (max_tokens) + 32 of dialogue context
    assert tok[0]["encoder_tokens"] < 8 + 8 and tok[1]["encoder_tokens"] >= 96
    # the text stage ran at each final transcript (features.streaming_text, on in the demo profile), ahead of the close
    assert all(p["text_ahead_s"] > 0 for ser in s.values() for p in ser["points"])
    fps = s["camera_fps"]["points"]
    assert [p["frames"] for p in fps] == [15, 45] and {round(p["audio_s"], 3) for p in fps} == {3.0}
    faces = s["faces"]["points"]
    if pipe.faces is None:
        assert all(p["face_cpu_ms_per_frame"] is None for p in faces)
    else:  # the face stage found the faces put in view, and ran on every processed frame
        assert [p["faces_found"] for p in faces] == [1, 2]
        assert all(p["face_cpu_ms_per_frame"] > 0 for p in faces)


def test_the_plot_is_written(scaling, tmp_path) -> None:
    doc, _ = scaling
    png = plot_scaling(doc, tmp_path / "bench_scaling.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_tokens_series_puts_the_rest_in_context() -> None:
    class Text:
        max_tokens, context_turns = 64, 4

    class Pipe:
        extractors = {"text": Text()}

    text, turns = _context_turns(Pipe(), 256)
    assert len(text.split()) == 64 and len(turns) == 4 and sum(len(t.split()) for _, t in turns) == 192
    text, turns = _context_turns(Pipe(), 8)
    assert len(text.split()) == 8 and turns == []
    Text.context_turns = 0  # a profile without dialogue context stops at max_tokens
    assert _context_turns(Pipe(), 256)[1] == []


def test_face_frames_show_the_faces_asked_for() -> None:
    for n in (1, 4, 8):
        ext = build_face_evidence(True, 5.0, "largest")  # a fresh tracker: the first frame runs the full detector
        if ext is None:
            pytest.skip("face weights not installed (make setup)")
        frame = face_frame(n)
        assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
        assert len(ext.observe(0.0, frame)) == n
    assert not face_frame(0).any()


def test_cli_flags() -> None:
    args = build_parser().parse_args(["bench", "--scaling", "tiny", "--scaling-repeats", "2", "--scaling-only"])
    assert (args.scaling, args.scaling_repeats, args.scaling_only) == ("tiny", 2, True)
    args = build_parser().parse_args(["bench"])
    assert (args.scaling, args.scaling_only) == ("off", False)
