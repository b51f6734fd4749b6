"""Dataset utterances played as one continuous microphone stream, as a robot hears a dialogue.

``synctva evaluate DATA --stream`` uses this to measure what streaming feature extraction
(:mod:`synctva_ros.streaming`) changes against the batch extractors the checkpoints were
trained with: the utterances of a MELD CSV or IEMOCAP JSONL are laid out on one sensor-time
line (in file order, so dialogues stay together), separated by gaps of low noise (a
microphone's noise floor), fed in chunks to an
:class:`~synctva_ros.windowing.windower.UtteranceWindower` whose sink is the pipeline's
streaming cache, each followed by its final transcript with the utterance's bounds; windows
are yielded as the windower emits them, i.e. as the node would process them. Each window gets the
``speaker_id`` of its utterance (the transcript's speaker), so the dialogue context of a pipeline that
predicts them is the one the non-streamed windows of the same file give.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from synctva_ros.config import WindowingConfig
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.windowing.windower import StreamSink, UtteranceWindower

__all__ = ["stream_windows", "NOISE_FLOOR"]

#: Standard deviation of the noise between utterances (full scale = 1; about -60 dBFS).
NOISE_FLOOR = 1e-3


def stream_windows(windows: Iterable[tuple[UtteranceWindow, Any]], cfg: WindowingConfig, sample_rate: int,
                   sink: StreamSink | None, gap_s: tuple[float, float] = (0.3, 0.8), chunk_s: float = 0.02,
                   t0: float = 1_700_000_000.0, seed: int = 0) -> Iterator[tuple[UtteranceWindow, Any]]:
    """Play dataset windows as one stream through a windower; yield ``(window, label)`` as emitted.

    Args:
        windows: ``(window, label)`` with the utterance audio in ``window.audio`` (``(S,)`` float32 at
            ``sample_rate``) and its transcript; their own times are ignored.
        cfg: windowing configuration of the windower.
        sample_rate: Hz of the audio.
        sink: the streaming cache fed by the windower (``EmotionPipeline.streaming``), or ``None``.
        gap_s: silence before each utterance, uniform in this range (seconds).
        chunk_s: microphone chunk length (seconds).
        t0: sensor time of the first sample (seconds; epoch-sized by default, as on a robot).
        seed: for the gaps and the noise.

    Yields:
        The windower's windows (transcript bounds = the utterance's span in the stream) with the
        label of the utterance whose ``utterance_id`` they carry.
    """
    rng = np.random.default_rng(seed)
    w = UtteranceWindower(cfg, sample_rate, sink=sink)
    labels: dict[str, Any] = {}
    n = max(1, int(round(chunk_s * sample_rate)))
    cursor = 0  # samples since t0

    def feed(x: np.ndarray) -> Iterator[tuple[UtteranceWindow, Any]]:
        """Microphone chunks of ``x`` from ``cursor`` on, polling after each (as the node does)."""
        for i in range(0, x.size, n):
            stamp = t0 + (cursor + i) / sample_rate
            w.add_audio(stamp, x[i:i + n], sample_rate)
            yield from ((o, labels.get(o.utterance_id)) for o in w.poll(stamp))

    for win, label in windows:
        speech = np.asarray(win.audio, dtype=np.float32)
        gap = int(rng.uniform(*gap_s) * sample_rate)
        x = np.concatenate([rng.normal(0.0, NOISE_FLOOR, gap).astype(np.float32), speech])
        start, end = cursor + gap, cursor + gap + speech.size
        labels[win.utterance_id] = label
        yield from feed(x)
        cursor += x.size
        now = t0 + cursor / sample_rate
        w.add_transcript(win.transcript or "", t0 + start / sample_rate, t0 + end / sample_rate, True, stamp=now,
                         utterance_id=win.utterance_id, dialogue_id=win.dialogue_id, speaker_id=win.speaker_id)
    yield from feed(rng.normal(0.0, NOISE_FLOOR, int((cfg.late_s + 0.5) * sample_rate)).astype(np.float32))
    yield from ((o, labels.get(o.utterance_id)) for o in w.flush())
