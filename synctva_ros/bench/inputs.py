"""The benchmark's inputs: realistic utterance windows and the machine's measured matmul peak.

Windows: a 3 s utterance of espeak-ng speech (:func:`~synctva_ros.datasets.speech.render_speech`)
with camera frames made from ``skimage.data.astronaut`` (shifted a little per frame) at 15 fps.

Speech is rendered once and kept as ``.npy`` under ``<cache_root>/bench/speech`` (:func:`bench_speech`): reruns
skip espeak-ng, and a machine without it (a GPU machine that cannot install packages) measures the same audio when
that folder is copied there.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from skimage.data import astronaut

from synctva_ros.backends.engine_cache import CachedArtifact, cache_root, cached_build
from synctva_ros.datasets.speech import render_speech
from synctva_ros.core.window import TimedFrame, UtteranceWindow

__all__ = ["SENTENCES", "bench_speech", "realistic_windows", "measure_peak_gflops"]

#: Transcripts of the benchmark windows (also the corpus of the random RoBERTa's tokenizer).
SENTENCES = ("I can't believe you actually did that for me, thank you!",
             "Why would you tell her about the party, seriously?",
             "Well, I guess we will just have to wait and see.")


def bench_speech(text: str, speaker: str, duration_s: float, sample_rate: int = 16000) -> np.ndarray:
    """:func:`~synctva_ros.datasets.speech.render_speech` of ``text``, kept under ``<cache_root>/bench/speech``.

    A :func:`~synctva_ros.backends.engine_cache.cached_build` artefact keyed by ``(text, speaker, duration_s,
    sample_rate)``: written atomically, reused only while its content hash matches the one recorded at build time
    (a damaged file is rendered again).

    Args:
        text: what is said.
        speaker: selects the voice.
        duration_s: wanted length (seconds).
        sample_rate: output rate (Hz).

    Returns:
        ``(S,)`` float32 mono in [-1, 1].

    Raises:
        synctva_ros.datasets.speech.EspeakNotFoundError: not cached and espeak-ng is not installed.
    """
    parts = {"text": text, "speaker": speaker, "duration_s": round(float(duration_s), 6),
             "sample_rate": int(sample_rate)}

    def render(path: Path) -> None:
        x = render_speech(text, speaker=speaker, duration_s=duration_s, sample_rate=sample_rate)
        with open(path, "wb") as f:  # a file object: np.save would add ".npy" to the temporary path
            np.save(f, x, allow_pickle=False)

    path, _ = cached_build(CachedArtifact(cache_root(None), "bench/speech", "speech", "npy", parts), render)
    return np.load(path, allow_pickle=False)


def realistic_windows(n: int = 3, duration_s: float = 3.0, fps: float = 15.0, sample_rate: int = 16000,
                      t0: float = 1000.0) -> list[UtteranceWindow]:
    """``n`` utterance windows of ``duration_s`` seconds: espeak-ng speech + astronaut camera frames.

    Window ``i`` starts at ``t0 + i * (duration_s + 2)`` seconds (sensor time) and carries the
    sentence ``SENTENCES[i % 3]`` rendered by espeak-ng into the first 90 % of the window (50 ms lead),
    and ``duration_s * fps`` RGB frames of ``skimage.data.astronaut`` rolled by a few pixels each.

    Args:
        n: number of windows.
        duration_s: window length (seconds).
        fps: camera frame rate (Hz).
        sample_rate: audio sample rate (Hz).
        t0: start of the first window (seconds, sensor time).

    Returns:
        The windows; audio shape ``(duration_s * sample_rate,)`` float32, frames ``(512, 512, 3)`` uint8.

    Raises:
        synctva_ros.datasets.speech.EspeakNotFoundError: espeak-ng is not installed and the speech is not cached.
    """
    img = np.ascontiguousarray(astronaut())  # (512, 512, 3) uint8 RGB, has a face
    out = []
    for i in range(n):
        text = SENTENCES[i % len(SENTENCES)]
        x = bench_speech(text, f"s{i}", duration_s * 0.9, sample_rate)
        audio = np.zeros(int(duration_s * sample_rate), np.float32)
        lead = int(0.05 * sample_rate)
        k = min(x.size, audio.size - lead)
        audio[lead:lead + k] = x[:k]
        start = t0 + i * (duration_s + 2.0)
        frames = [TimedFrame(start + j / fps, np.roll(img, (j % 5, (j * 3) % 7), axis=(0, 1)))
                  for j in range(int(duration_s * fps))]
        out.append(UtteranceWindow(start=start, end=start + duration_s, transcript=text, frames=frames, audio=audio,
                                   sample_rate=sample_rate, audio_start=start, utterance_id=f"u{i}",
                                   dialogue_id="bench", closed_at=start + duration_s))
    return out


def measure_peak_gflops(n: int = 1024, reps: int = 8, device: str = "cpu") -> float:
    """Best fp32 GFLOP/s of ``torch.mm`` on ``n x n`` matrices on ``device`` (CPU: torch's current thread count;
    CUDA: synchronised around each multiplication, torch's default matmul precision, so no TF32 unless enabled).

    Args:
        n: matrix size (the GPU peak is measured on at least 4096 x 4096: smaller products do not fill it).
        reps: timed multiplications (after one warm-up); the fastest counts.
        device: ``cpu`` or a CUDA device (``cuda``, ``cuda:N``).

    Returns:
        ``2 n^3 / best_seconds / 1e9``.

    Raises:
        RuntimeError, AssertionError: a CUDA device that torch cannot use (torch without CUDA asserts).
    """
    cuda = str(device).startswith("cuda")
    n = max(n, 4096) if cuda else n
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9
