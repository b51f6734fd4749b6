"""DialogueContext: sessions, speakers, bounds, reset; dataset_contexts from a dataset's dialogue order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.dialogue import DialogueContext, Turn, context_string, dataset_contexts, tag_turn


def test_turns_are_per_session_in_order_and_bounded():
    ctx = DialogueContext(max_turns=2)
    for i, (sess, spk) in enumerate([("a", "Ross"), ("b", ""), ("a", "Rachel"), ("a", "Ross")]):
        assert ctx.add(sess, spk, f" line {i} ")
    assert [(t.speaker, t.text) for t in ctx.turns("a")] == [("Rachel", "line 2"), ("Ross", "line 3")]
    assert [t.text for t in ctx.turns("b")] == ["line 1"] and ctx.turns("c") == []
    assert [t.text for t in ctx.turns("a", k=1)] == ["line 3"] and ctx.turns("a", k=0) == []


def test_empty_text_adds_no_turn_and_reset_forgets_everything():
    ctx = DialogueContext(max_turns=4)
    assert not ctx.add("a", "Ross", "   ") and not ctx.add("a", "Ross", None)
    assert ctx.turns("a") == [] and len(ctx) == 0
    ctx.add("a", "Ross", "hi")
    ctx.add("b", "Joey", "how you doin'")
    ctx.reset()
    assert len(ctx) == 0 and ctx.turns("a") == [] and ctx.turns("b") == []


def test_least_recently_used_session_is_dropped():
    ctx = DialogueContext(max_turns=3, max_sessions=2)
    ctx.add("a", "", "one")
    ctx.add("b", "", "two")
    ctx.add("a", "", "three")  # a is now the most recent
    ctx.add("c", "", "four")
    assert ctx.turns("b") == [] and [t.text for t in ctx.turns("a")] == ["one", "three"] and len(ctx) == 2
    with pytest.raises(ValueError):
        DialogueContext(0)


def test_windows_carry_session_speaker_and_sentence():
    ctx = DialogueContext(max_turns=2)
    w = UtteranceWindow(0.0, 1.0, transcript="We were on a break!", dialogue_id="7")
    w.speaker_id = "Ross"
    ctx.add_window(w, np.ones(3))
    ctx.add_window(UtteranceWindow(1.0, 2.0, transcript=None, dialogue_id="7"))  # VAD window: no turn
    (turn,) = ctx.turns("7")
    assert (turn.speaker, turn.text) == ("Ross", "We were on a break!") and turn.sentence.dtype == np.float32
    assert [t.text for t in DialogueContext(1).turns("7")] == []


def test_tags_and_context_string():
    assert tag_turn("Monica", " Hi ") == "Monica: Hi" and tag_turn("", "Hi") == "Hi"
    assert context_string([Turn("Ross", "a"), Turn("", "b"), Turn("Phoebe", "c")]) == "Ross: a b Phoebe: c"


def test_dataset_contexts_follow_dialogue_order_not_file_order():
    def u(d, i, spk, text):
        return SimpleNamespace(dialogue_id=d, utterance_index=i, utterance_id=f"{d}_{i}", speaker=spk, text=text)

    utts = [u("1", 2, "B", "third"), u("1", 0, "A", "first"), u("2", 0, "C", "other"), u("1", 1, "B", ""),
            u("1", 3, "A", "fourth")]
    got = {k: [(t.speaker, t.text) for t in v] for k, v in dataset_contexts(utts, 2).items()}
    assert got == {"1_0": [], "1_1": [("A", "first")], "1_2": [("A", "first")],  # the empty one adds nothing
                   "1_3": [("A", "first"), ("B", "third")], "2_0": []}
    assert all(v == [] for v in dataset_contexts(utts, 0).values())


def test_context_per_person_is_one_dialogue_history_tagged_by_person():
    """Issue 11: the turns of all speakers stay in the dialogue's one history (what the checkpoints were trained
    on); each is tagged with its ROS4HRI person when known, else its voice, else untagged."""
    from synctva_ros.core.persons import PersonRegistry
    from synctva_ros.features.dialogue import window_speaker

    reg = PersonRegistry()
    reg.set_voice("person_anna", "voice_3")  # a person manager associated this voice with Anna
    ctx = DialogueContext(max_turns=4)
    for voice, text in [("voice_3", "I got the job!"), ("voice_9", "No way, congratulations!"), ("", "Thanks.")]:
        ctx.add_window(reg.attribute(UtteranceWindow(0.0, 1.0, transcript=text, speaker_id=voice)))
    turns = ctx.turns("")
    assert [(t.speaker, t.text) for t in turns] == [("person_anna", "I got the job!"),
                                                    ("voice_9", "No way, congratulations!"), ("", "Thanks.")]
    assert context_string(turns) == "person_anna: I got the job! voice_9: No way, congratulations! Thanks."
    # without persons a window keeps its transcript speaker as the tag, as the datasets (MELD "Speaker") do
    assert window_speaker(UtteranceWindow(0.0, 1.0, speaker_id="Ross")) == "Ross"
    assert window_speaker(SimpleNamespace()) == ""
