"""Nothing the node keeps per message grows with the length of the stream (issue 14's soak, in seconds).

The windower, the dialogue context and the person registry are driven through a long synthetic stream,
without resets (a robot) and as a looped bag (a time reset per loop), with every cap set small so the
test passes each bound many times; every list, dict, set and deque reachable from them
(:func:`synctva_ros.bench.memprobe.container_lengths`) must be no longer after the stream has run three
times as long, sampled at the same phase. The stated bounds: ``windowing.buffer_s`` of frames and audio
(frames also ``max_frames``), ``max_pending`` windows, :data:`~synctva_ros.windowing.stamps.MAX_SEEN_UTTERANCES`
utterance ids, 64 voice onsets, ``max_turns`` x ``max_sessions`` dialogue turns, ``max_persons`` persons.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from synctva_ros.bench.memprobe import container_lengths
from synctva_ros.config import WindowingConfig
from synctva_ros.core.persons import PersonRegistry
from synctva_ros.features.dialogue import DialogueContext
from synctva_ros.windowing.stamps import SeenUtterances
from synctva_ros.windowing.windower import UtteranceWindower

SR = 16000
FRAME = np.zeros((2, 2, 3), np.uint8)
SPEECH = (0.3 * np.sin(np.arange(320) * 2 * np.pi * 200 / SR)
          * (1 + np.random.default_rng(0).normal(0, 0.5, 320))).astype(np.float32)
SILENCE = np.zeros(320, np.float32)


def _state() -> SimpleNamespace:
    w = UtteranceWindower(WindowingConfig(buffer_s=3.0, max_frames=20, frame_keep_hz=10.0, vad_enabled=True,
                                          default_window_s=1.0, vad_hangover_s=0.2), SR)
    w._seen = SeenUtterances(limit=8)  # the cap set small (4096 in the node) so the stream passes it
    return SimpleNamespace(windower=w, dialogue=DialogueContext(max_turns=4, max_sessions=3),
                           persons=PersonRegistry(max_persons=5), leak=None)


def _drive(s: SimpleNamespace, t0: float, seconds: float, n0: int) -> int:
    """``seconds`` of a 30 fps camera, 20 ms audio chunks (speech 1.2 s of every 2 s) and a final transcript
    every 2 s (ids, dialogues and persons all new), from sensor time ``t0``; returns the utterances made."""
    w, n = s.windower, n0
    for k in range(int(round(seconds * 50))):  # one 20 ms audio step
        t = t0 + k * 0.02
        w.add_audio(t, SPEECH if (t - t0) % 2.0 < 1.2 else SILENCE, SR)
        if k % 5 in (0, 2, 3):  # about 30 fps
            if not w.thin_frame(t + 0.001):
                w.add_frame(t + 0.001, FRAME)
        if k % 100 == 99:
            n += 1
            w.add_transcript(f"utterance {n}", t - 1.9, t - 0.7, True, stamp=t, utterance_id=f"u{n}",
                             dialogue_id=f"d{n // 3}", speaker_id=f"v{n}")
            s.persons.set_voice(f"p{n}", f"v{n}")
        if s.leak is not None:
            s.leak.append(t)
        for win in w.poll(t):
            s.dialogue.add_window(s.persons.attribute(win))
    return n


def _grown(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {p: (before.get(p, 0), n) for p, n in after.items() if n > before.get(p, 0)}


def test_a_stream_without_resets_grows_nothing():
    s = _state()
    n = _drive(s, 1000.0, 150.0, 0)  # past every cap (64 voice onsets at one per 2 s: 128 s)
    early = container_lengths(s)
    assert early["windower._frames._frames"] > 0 and early["windower._seen._ids"] == 8, early
    assert early["windower._closer.vad.onsets"] == 64 and len(s.persons._persons) == 5, early
    _drive(s, 1150.0, 300.0, n)
    late = container_lengths(s)
    assert not _grown(early, late), _grown(early, late)
    assert s.windower.count("time_resets") == 0 and s.windower.count("windows") >= 200


def test_a_looped_bag_grows_nothing():
    s = _state()
    n = 0
    for loop in range(9):  # a 20 s bag, restarted: one time reset per loop
        n = _drive(s, 1000.0, 20.0, n)
        if loop == 2:
            early = container_lengths(s)
    late = container_lengths(s)
    assert not _grown(early, late), _grown(early, late)
    assert s.windower.count("time_resets") == 8


def test_the_check_finds_a_structure_that_grows_with_the_stream():
    s = _state()
    n = _drive(s, 1000.0, 150.0, 0)
    s.leak = []
    early = container_lengths(s)
    _drive(s, 1150.0, 12.0, n)  # the same phase: three utterances per dialogue
    assert list(_grown(early, container_lengths(s))) == ["leak"]
