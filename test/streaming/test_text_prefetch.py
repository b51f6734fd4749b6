"""TextPrefetch: the text stage run at the final transcript, used at close only for the same inputs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from synctva_ros.config import load_config
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.pipeline import EmotionPipeline
from synctva_ros.streaming.text_prefetch import TextPrefetch, text_job


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
    cfg = load_config("demo", {"runtime.checkpoint": str(tiny_checkpoint), "features.face_expert": False})
    p = EmotionPipeline(cfg)
    yield p
    p.close()


def _window(text: str, dialogue: str = "d1", speaker: str = "Ross") -> UtteranceWindow:
    return UtteranceWindow(start=0.0, end=1.0, transcript=text, dialogue_id=dialogue, speaker_id=speaker)


def _direct(pipe: EmotionPipeline, w: UtteranceWindow):
    """The text stage computed at close, without any prefetch."""
    return pipe.extractors["text"].encode_window(w, pipe.dialogue.turns(w.dialogue_id),
                                                 sentence=pipe.context_turns > 0)


def test_a_prefetched_text_stage_is_used_at_close_and_equals_the_close_computation(pipe):
    assert pipe.streaming is not None and pipe.streaming.text is not None  # on by default
    pipe.reset_dialogue()
    stats = pipe.streaming.stats
    before = dict(stats)
    first = _window("We were on a break!")
    pipe.predict(first)  # a turn of context for the next
    w = _window("No, we were not.", speaker="Rachel")
    pipe.streaming.on_transcript(w)  # what the windower does when the final transcript arrives
    assert stats["text_prefetched"] - before.get("text_prefetched", 0) == 1  # only the second was handed over
    want, _ = _direct(pipe, w)
    feats, _ = pipe.extract(w)
    assert stats["text_prefetch_hit"] - before.get("text_prefetch_hit", 0) == 1
    np.testing.assert_array_equal(feats.text.x, want.x)
    np.testing.assert_array_equal(feats.text.prefix, want.prefix)
    assert len(pipe.streaming.text) == 0  # taken


def test_a_changed_context_is_a_miss_and_the_close_encodes_with_the_new_one(pipe):
    pipe.reset_dialogue()
    stats = pipe.streaming.stats
    w1, w2 = _window("Get out of my apartment."), _window("Fine, I am leaving.", speaker="Rachel")
    pipe.streaming.on_transcript(w2)  # w2's transcript arrives before w1 was predicted: no turn of context yet
    pipe.predict(w1)
    misses = stats["text_prefetch_miss"]
    stale_key, _ = text_job(pipe.extractors["text"], w2, [], pipe.context_turns > 0)
    want, _ = _direct(pipe, w2)
    feats, _ = pipe.extract(w2)
    assert stats["text_prefetch_miss"] == misses + 1
    np.testing.assert_array_equal(feats.text.x, want.x)
    assert pipe.extractors["text"].context_turns > 0  # so the context changes the features
    stale, _ = text_job(pipe.extractors["text"], w2, [], pipe.context_turns > 0)[1]()
    assert not np.array_equal(stale.x, want.x)
    assert stale_key in pipe.streaming.text._results  # left unused; bounded and forgotten at reset
    pipe.streaming.reset()
    assert len(pipe.streaming.text) == 0


def test_the_person_of_the_voice_is_set_on_the_transcript_as_on_the_closed_window(pipe):
    """The node tags the closed window with the ROS4HRI person of its voice (the speaker tag the encoder reads): the
    transcript's window gets the same (``annotate``), else every such window would be encoded twice."""
    pipe.reset_dialogue()
    pipe.predict(_window("Where were you last night?"))  # context, so the tag matters

    def person(w: UtteranceWindow) -> UtteranceWindow:
        w.person_id = "person_ross"
        return w

    stats = pipe.streaming.stats
    for annotate, counter in ((None, "text_prefetch_miss"), (person, "text_prefetch_hit")):
        pipe.streaming.annotate = annotate
        pipe.streaming.on_transcript(_window("Out with Chandler."))
        before = stats[counter]
        closed = person(_window("Out with Chandler."))  # as the node emits it
        feats, _ = pipe.extract(closed)
        assert stats[counter] == before + 1
        np.testing.assert_array_equal(feats.text.x, _direct(pipe, closed)[0].x)
    pipe.streaming.annotate = lambda w: 1 / 0  # a failing hook costs the prefetch only
    errors = stats["text_prefetch_errors"]
    pipe.streaming.on_transcript(_window("Out with Chandler."))
    assert stats["text_prefetch_errors"] == errors + 1
    pipe.streaming.annotate = None
    pipe.streaming.reset()


def test_the_background_thread_is_waited_for_and_bounds_and_errors_are_counted():
    gate, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def prepare(w: UtteranceWindow):
        def job():
            started.set()
            gate.wait(5)
            if w.transcript == "bad":
                raise ValueError("no tokens")
            ran.append(w.transcript)
            return w.transcript.upper()
        return w.transcript, job

    tp = TextPrefetch(prepare, max_entries=2)
    tp.start()
    try:
        tp.submit(_window("a"))
        assert started.wait(5)  # "a" runs, held at the gate
        for t in ("bad", "c", "   "):  # blank: nothing to do
            tp.submit(_window(t))
        assert tp.stats["text_prefetched"] == 3 and tp.stats["text_prefetch_dropped"] == 1  # "a" dropped
        gate.set()
        assert tp.take("c") == "C"  # waits for the job still running
        assert tp.take("bad") is None and tp.stats["text_prefetch_errors"] == 1
        assert tp.take("a") is None  # dropped (its job was already running)
        assert (tp.stats["text_prefetch_hit"], tp.stats["text_prefetch_miss"]) == (1, 2)
        assert tp.wait_idle(5) and sorted(ran) == ["a", "c"]
        gate.clear()
        started.clear()
        tp.submit(_window("x0"))
        assert started.wait(5)  # x0 runs (held at the gate) while a flood queues behind it
        for t in ("x1", "x2", "x3", "x4"):  # only the kept ones are encoded
            tp.submit(_window(t))
        gate.set()
        assert tp.wait_idle(5) and tp.take("x4") == "X4" and tp.take("x3") == "X3"
        assert sorted(ran) == ["a", "c", "x0", "x3", "x4"]  # x1, x2 dropped before their turn: never encoded
    finally:
        tp.stop()
    assert not tp.running
    tp.submit(_window("d"))  # stopped: in the caller's thread
    assert tp.take("d") == "D"
    with pytest.raises(ValueError):
        TextPrefetch(prepare, max_entries=0)


def test_stop_releases_the_waiters_of_cancelled_jobs():
    gate = threading.Event()
    tp = TextPrefetch(lambda w: (w.transcript, lambda: gate.wait(5) and w.transcript))
    tp.start()
    tp.submit(_window("first"))  # runs, blocked on the gate
    tp.submit(_window("second"))  # queued behind it
    stopper = threading.Thread(target=tp.stop)
    stopper.start()
    gate.set()
    stopper.join(5)
    assert tp.take("first") == "first"
    assert tp.take("second", timeout_s=1) is None  # cancelled: encoded at close, nobody waits for it


def test_a_flood_of_failing_jobs_is_counted_in_full_and_logged_at_the_windower_rate(caplog):
    def prepare(w: UtteranceWindow):
        def job():
            raise ValueError("no tokens")
        return w.transcript, job

    tp = TextPrefetch(prepare)
    with caplog.at_level("WARNING", logger="synctva_ros.streaming.text_prefetch"):
        for i in range(12):  # not started: each job runs (and fails) in this thread
            tp.submit(_window(f"bad {i}"))
    assert tp.stats["text_prefetch_errors"] == 12
    logged = [r for r in caplog.records if "text prefetch" in r.getMessage()]
    assert len(logged) == 5 and "#5" in logged[-1].getMessage()


def test_wait_idle_takes_one_deadline_for_all_pending_jobs():
    # 4 jobs of 0.2 s each run one after the other (done at 0.2, 0.4, 0.6, 0.8 s): each would finish within 0.3 s of
    # the previous one, so only a single deadline for all of them stops the wait at about 0.3 s
    tp = TextPrefetch(lambda w: (w.transcript, lambda: time.sleep(0.2) or w.transcript), max_entries=8)
    tp.start()
    try:
        t0 = time.monotonic()
        for i in range(4):
            tp.submit(_window(f"t{i}"))
        assert not tp.wait_idle(0.3)
        assert time.monotonic() - t0 < 0.6
        assert tp.wait_idle(5)
    finally:
        tp.stop()
