"""How the cost of one window grows with the work (issue 12): ``synctva bench --scaling``.

Four series on one configuration's pipeline, each varying one thing from a 3 s utterance with a natural
transcript, one face in view and a 15 fps camera (:data:`DEFAULTS`):

* ``utterance_s``: utterance length, seconds (1-30): longer speech (espeak-ng, about 2.5 words per second, the
  transcript grows with it up to the extractor's ``max_tokens``) and more camera frames;
* ``tokens``: word pieces the text encoder sees (8-256): the utterance's own (at most ``features.text_max_tokens``)
  and, above that, previous turns of the dialogue (at most ``features.text_context_turns`` turns and
  ``features.text_context_max_tokens`` word pieces): a profile without dialogue context stops at its
  ``max_tokens``; ``encoder_tokens`` records what the encoder really ran on (the longest sequence of the window);
* ``faces``: faces in view (1-8): copies of the ``skimage`` astronaut's face (a real photograph, scaled to at most
  150 px) on a black 640x480 frame, in one row of up to four, two rows above four;
* ``camera_fps``: camera rate (5-30 frames per second).

Each point is measured as the node runs (``streaming``): the window's audio and frames are fed to the pipeline's
:class:`~synctva_ros.streaming.StreamingFeatureCache` first, untimed, each frame only once the cache has taken the
previous one (a live camera arrives no faster than the stage keeps up, so none is dropped), then
``EmotionPipeline.predict`` at close is timed. Per point (``repeats`` timed windows after one warm-up):

* ``latency_s``: window close to result, :func:`~synctva_ros.bench.measure.percentiles` (seconds);
* ``stages_s``: the stages' medians at close (seconds);
* ``close_cpu_s``: the median CPU time (``time.thread_time``) of the calling thread over ``predict``: the work at close
  with one thread, much less sensitive than wall time to other processes on the cores;
* ``stream_cpu_cores``: process CPU seconds spent while feeding (openSMILE's live run, the face stage, frame
  encoders) per second of utterance: the cores the window's streaming work needs in real time (median);
* ``face_cpu_ms_per_frame``: the face stage's CPU time (``time.thread_time``) per processed frame, mean over the
  window's frames thinned to ``features.face_fps`` (``None`` when the face stage is off), and ``faces_found``: the
  median number of faces it found per processed frame;
* ``text_ahead_s``: the text stage's wall time when it ran at the final transcript, before the close
  (``features.streaming_text``; median; ``None`` when off): with a speech-to-text whose final result comes
  ``windowing.late_s`` or less before the close this is added to the close instead;
* ``encoder_tokens``, ``frames``, ``audio_s``: what the window held.

Wall-clock figures depend on the machine's load; the output says which configuration and backend, and the load
average before and after (``os.getloadavg``). Raises nothing of its own; espeak-ng errors propagate
(:class:`~synctva_ros.datasets.speech.EspeakNotFoundError`).
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping, Sequence

import numpy as np
from skimage.data import astronaut

from synctva_ros.backends import create_backend
from synctva_ros.bench.inputs import SENTENCES, bench_speech
from synctva_ros.bench.measure import percentiles, stream_into
from synctva_ros.core.window import TimedFrame, UtteranceWindow
from synctva_ros.evaluation.two_faces import FRAME_SIZE, Placement, compose
from synctva_ros.features.faces.evidence import thin_stamps
from synctva_ros.streaming import StreamingFeatureCache

__all__ = ["SERIES", "TINY_SERIES", "DEFAULTS", "UNITS", "SCALING_KEYS", "POINT_KEYS", "scaling_window", "face_frame",
           "run_scaling"]

#: The full series (``synctva bench --scaling``).
SERIES: dict[str, tuple[float, ...]] = {"utterance_s": (1, 2, 5, 10, 20, 30), "tokens": (8, 16, 32, 64, 128, 256),
                                        "faces": (1, 2, 4, 8), "camera_fps": (5, 10, 15, 30)}
#: A tiny series for tests.
TINY_SERIES: dict[str, tuple[float, ...]] = {"utterance_s": (1, 3), "tokens": (8, 96), "faces": (1, 2),
                                             "camera_fps": (5, 15)}
#: What the other series hold fixed (``tokens`` None: the window's own transcript).
DEFAULTS: dict[str, Any] = {"utterance_s": 3.0, "tokens": None, "faces": 1, "camera_fps": 15.0}
UNITS = {"utterance_s": "seconds of speech", "tokens": "word pieces in the text encoder's input",
         "faces": "faces in view", "camera_fps": "camera frames per second"}
#: Keys of the ``scaling`` document and of each point.
SCALING_KEYS = ("config", "backend", "text_encoder", "text_top", "mode", "repeats", "defaults", "load_average",
                "series")
POINT_KEYS = ("x", "latency_s", "stages_s", "close_cpu_s", "stream_cpu_cores", "face_cpu_ms_per_frame", "faces_found",
              "text_ahead_s", "encoder_tokens", "frames", "audio_s")
#: Words that are one word piece in the BERT and MPNet vocabularies (the ``tokens`` series' text).
_WORDS = ("you", "know", "what", "i", "think", "we", "should", "go", "there", "now", "and", "then", "see", "how",
          "it", "feels", "for", "them", "all", "right")
_FACE = np.ascontiguousarray(astronaut()[41:191, 148:298])  # the astronaut's face, 150x150 RGB (box 89x118)


def face_frame(n: int, shift: int = 0, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A black ``(height, width, 3)`` uint8 frame with ``n`` (>= 0) copies of the astronaut's face, every other one
    mirrored: one row of up to four (two rows above four), each at most 150 px, moved right by ``shift`` px."""
    if n <= 0:
        return np.zeros((size[1], size[0], 3), np.uint8)
    cols = min(n, 4)
    rows = -(-n // 4)
    cw, ch = size[0] / cols, size[1] / rows
    side = min(150.0, 0.8 * min(cw, ch))
    spots = [Placement(cw * (i % cols + 0.5) + shift, ch * (i // cols + 0.5), side) for i in range(n)]
    return compose([_FACE if i % 2 == 0 else _FACE[:, ::-1] for i in range(n)], spots, size)


def _words(n: int, start: int = 0) -> str:
    return " ".join(_WORDS[(start + i) % len(_WORDS)] for i in range(max(1, n)))


def scaling_window(duration_s: float = 3.0, fps: float = 15.0, faces: int = 1, transcript: str | None = None,
                   t0: float = 1000.0, speaker: str = "s0") -> UtteranceWindow:
    """One utterance window of ``duration_s`` seconds: espeak-ng speech (cached,
    :func:`~synctva_ros.bench.inputs.bench_speech`) over its first 90 % (50 ms lead), a camera of ``fps`` frames per
    second showing ``faces`` faces (:func:`face_frame`, moving one pixel per frame), and ``transcript`` (default: the
    bench sentences repeated to about 2.5 words per second).

    Shapes:
        audio ``(duration_s * 16000,)`` float32; frames ``(480, 640, 3)`` uint8.

    Raises:
        synctva_ros.datasets.speech.EspeakNotFoundError: espeak-ng is missing and the speech is not cached
            (:func:`~synctva_ros.bench.inputs.bench_speech`).
    """
    sr = 16000
    if transcript is None:
        words = " ".join(SENTENCES).split()
        n = max(3, int(round(2.5 * duration_s)))
        transcript = " ".join(words[i % len(words)] for i in range(n))
    x = bench_speech(transcript, speaker, 0.9 * duration_s, sr)
    audio = np.zeros(int(round(duration_s * sr)), np.float32)
    lead = int(0.05 * sr)
    k = min(x.size, audio.size - lead)
    audio[lead:lead + k] = x[:k]
    frames = [TimedFrame(t0 + j / fps, face_frame(faces, j % 8)) for j in range(int(round(duration_s * fps)))]
    return UtteranceWindow(start=t0, end=t0 + duration_s, transcript=transcript, frames=frames, audio=audio,
                           sample_rate=sr, audio_start=t0, utterance_id="scaling", dialogue_id="scaling",
                           speaker_id=speaker, closed_at=t0 + duration_s)


def _context_turns(pipe: Any, tokens: int) -> tuple[str, list[tuple[str, str]]]:
    """The utterance (at most the extractor's ``max_tokens`` words) and previous turns (the rest, split over at most
    the extractor's ``context_turns`` turns) for a window of about ``tokens`` word pieces."""
    text = pipe.extractors.get("text")
    own = min(tokens, int(getattr(text, "max_tokens", tokens)))
    k = int(getattr(text, "context_turns", 0) or 0)
    rest = tokens - own
    turns = []
    if rest > 0 and k > 0:
        per = -(-rest // k)
        turns = [(["Ann", "Bob"][i % 2], _words(min(per, rest - i * per), 7 * i)) for i in range(k) if rest > i * per]
    return _words(own), turns


def _face_cost(pipe: Any, window: UtteranceWindow) -> tuple[float | None, int]:
    """Mean CPU ms per processed frame of the face stage over the window's thinned frames, median faces found."""
    ext = pipe.faces
    if ext is None or not window.frames:
        return None, 0
    cpu, found = [], []
    for i in thin_stamps([f.stamp for f in window.frames], ext.fps):
        c = time.thread_time()
        found.append(len(ext.observe(window.frames[i].stamp, window.frames[i].image)))
        cpu.append(time.thread_time() - c)
    return 1e3 * float(np.mean(cpu)), int(np.median(found))


def _series_window(pipe: Any, name: str, x: float) -> tuple[UtteranceWindow, Sequence[tuple[str, str]]]:
    """The window of series ``name`` at ``x`` (the others at :data:`DEFAULTS`) and its previous turns."""
    d, fps, faces = DEFAULTS["utterance_s"], DEFAULTS["camera_fps"], DEFAULTS["faces"]
    if name == "utterance_s":
        return scaling_window(float(x), fps, faces), []
    if name == "tokens":
        text, turns = _context_turns(pipe, int(x))
        return scaling_window(d, fps, faces, transcript=text), turns
    if name == "faces":
        return scaling_window(d, fps, int(x)), []
    return scaling_window(d, float(x), faces), []


def _point(pipe: Any, cache: Any, window: UtteranceWindow, turns: Sequence[tuple[str, str]],
           repeats: int) -> dict[str, Any]:
    text = pipe.extractors.get("text")
    seen: list[int] = []
    if text is not None:  # record the longest sequence the encoder runs on (an instance attribute, removed after)
        inner = text.layer_states
        text.layer_states = lambda enc: (seen.append(int(enc["input_ids"].shape[1])), inner(enc))[1]
    lat, cpu_close, cores, stages, ahead = [], [], [], {}, []
    pre = getattr(cache, "text", None)  # the text stage run at the final transcript (features.streaming_text)
    try:
        for k in range(repeats + 1):
            pipe.reset_dialogue()
            for who, said in turns:
                pipe.dialogue.add(window.dialogue_id, who, said)
            c0 = time.process_time()
            seen.clear()
            if pre is not None:
                pre.last_job_s = None
            stream_into(cache, window, paced=True)  # each frame once the previous one is taken
            cache.wait_ready(window)  # then the audio catches up
            cpu = time.process_time() - c0
            if pre is not None and pre.last_job_s is not None and k > 0:
                ahead.append(pre.last_job_s)
            c1, t0 = time.thread_time(), time.perf_counter()
            res = pipe.predict(window)
            dt, dc = time.perf_counter() - t0, time.thread_time() - c1
            if k == 0:
                continue
            lat.append(dt)
            cpu_close.append(dc)
            cores.append(cpu / window.duration)
            for st, v in res.stage_s.items():
                stages.setdefault(st, []).append(v)
    finally:
        if text is not None:
            del text.layer_states
        pipe.reset_dialogue()
    face_ms, found = _face_cost(pipe, window)
    return {"latency_s": percentiles(lat), "stages_s": {s: float(np.median(v)) for s, v in stages.items()},
            "close_cpu_s": float(np.median(cpu_close)),
            "stream_cpu_cores": float(np.median(cores)), "face_cpu_ms_per_frame": face_ms, "faces_found": found,
            "text_ahead_s": float(np.median(ahead)) if ahead else None,
            "encoder_tokens": max(seen) if seen else 0, "frames": len(window.frames),
            "audio_s": float(window.audio.size / window.sample_rate)}


def run_scaling(pipe: Any, cfg: Any, config: str, series: Mapping[str, Sequence[float]] | None = None,
                repeats: int = 5) -> dict[str, Any]:
    """Measure the scaling series on ``pipe`` served by ``cfg.runtime``'s backend (rebuilt here: a bench loop may
    have left another one in place); the pipeline's dialogue context is reset, its backend left as configured.

    Args:
        pipe: an :class:`~synctva_ros.pipeline.EmotionPipeline`.
        cfg: its configuration (``runtime``, and ``features.streaming_audio`` for a cache made here when the
            pipeline has none).
        config: the configuration's name (``config`` in the output).
        series: name -> x values (default :data:`SERIES`); unknown names are ignored.
        repeats: timed windows per point (at least 1).

    Returns:
        ``{"config", "backend", "text_encoder", "text_top" (what runs the split-off text layers), "mode": "streaming",
        "repeats", "defaults", "load_average":
        [before, after], "series": {name: {"unit", "x", "points": [{POINT_KEYS}]}}}``.
    """
    series = dict(SERIES if series is None else series)
    repeats = max(1, int(repeats))
    pipe.backend = create_backend(cfg.runtime, pipe.model, pipe.manifest, triton=getattr(cfg, "triton", None))
    pipe.serve_encoders(cfg.runtime)
    own = pipe.streaming is None
    cache = pipe.streaming or StreamingFeatureCache(
        {m: e for m, e in pipe.extractors.items() if pipe.active[m] and m in ("audio", "visual")},
        audio_mode=cfg.features.streaming_audio, faces=pipe.faces)
    saved, pipe.streaming = pipe.streaming, cache
    load0 = os.getloadavg()[0]
    out: dict[str, Any] = {"config": config, "backend": pipe.backend_name, "text_encoder": pipe.text_runtime,
                           "text_top": getattr(pipe.text_top_runner, "name", ""),
                           "mode": "streaming", "repeats": repeats, "defaults": dict(DEFAULTS), "series": {}}
    try:
        for name in (n for n in SERIES if n in series):
            points = [{"x": float(x), **_point(pipe, cache, *_series_window(pipe, name, x), repeats)}
                      for x in series[name]]
            out["series"][name] = {"unit": UNITS[name], "x": [float(x) for x in series[name]], "points": points}
    finally:
        pipe.streaming = saved
        if own:
            cache.close()
    out["load_average"] = [load0, os.getloadavg()[0]]
    return out
