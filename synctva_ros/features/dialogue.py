"""Dialogue context: the previous turns of a session, and how they are written for the text encoder.

The strongest text systems for emotion recognition in conversation encode the previous turns,
with speaker tags, in the same sequence as the current utterance: CoMPM (Lee and Lee, NAACL 2022)
and EmoBERTa (Kim and Vossen, 2021, "Speaker: utterance" turns in one RoBERTa sequence). This module
holds the turns; :class:`~synctva_ros.features.text.TextEncoder` encodes them.

One :class:`DialogueContext` serves every place that needs turns, so the node, ``synctva evaluate``
and the training cache build them by the same rules:

* a **session** is the window's ``dialogue_id`` ('' when unknown: one session for everything);
* a turn is ``(speaker, text)``; ``speaker`` is :func:`window_speaker`: the window's ROS4HRI person id when
  known, else its voice / transcript speaker id, else '' (the turn is written without a tag). Turns of all
  speakers of a session go into one history, each with its own tag (the speaker is written per turn, as in
  EmoBERTa, not kept apart);
* a window without text (a voice-activity window, an empty transcript) adds no turn;
* bounded: at most ``max_turns`` turns per session and ``max_sessions`` sessions (the least
  recently used session is forgotten first);
* :meth:`DialogueContext.reset` forgets everything: ``EmotionPipeline.predict`` calls it (through
  ``reset_dialogue``) when a window belongs to a new windower session (sensor time jumped: a bag restart).

Context per person (issue 11): the context is kept per person by **tagging** each turn with its person, not by
splitting the dialogue into one history per person. The shipped checkpoints (MELD, IEMOCAP) were trained with
the previous turns of the *dialogue*, all speakers interleaved, each as ``"Speaker: text"``
(:func:`dataset_contexts`); a history holding only the current speaker's turns would be an input they never
saw, and the other speakers' turns are much of the evidence (a reply's emotion follows what it answers).
So the model sees exactly what it was trained on, and the tag says who said what: the person id when a
ROS4HRI person manager associates the voice with a person (stable across that person's utterances, where a
voice id may change), else the voice id. A dataset or a bag without ROS4HRI persons keeps the tags it had
(the transcript's speaker). Which session a turn belongs to is unchanged (the window's ``dialogue_id``).

The turns may carry the utterance's sentence embedding too (``Turn.sentence``), for the pooled
dialogue context of ``model.context_turns`` (:mod:`synctva_ros.model.fusion`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["Turn", "DialogueContext", "TAG_FORMAT", "TURN_SEPARATOR", "CONTEXT_STATE_PREFIXES", "tag_turn",
           "context_string", "dataset_contexts"]

#: How a turn with a known speaker is written (EmoBERTa's "Speaker: utterance").
TAG_FORMAT = "{speaker}: {text}"
#: Between two context turns.
TURN_SEPARATOR = " "
#: A text identity's ``prefix`` when the context's states feed the fine-tuned layers (``features.text``): encoders
#: with absolute positions (BERT, MiniLM) take the context and speaker-tag states, those with relative positions
#: (MPNet) the pair separators too.
CONTEXT_STATE_PREFIXES = ("context_and_tag_states", "context_separators_and_tag_states")


@dataclass(frozen=True)
class Turn:
    """One previous utterance of a session.

    Attributes:
        speaker: speaker id or name ('' when unknown).
        text: the transcript, stripped (never empty).
        sentence: ``(F,)`` float32 sentence embedding of the utterance alone, or ``None``.
    """

    speaker: str
    text: str
    sentence: np.ndarray | None = None


def tag_turn(speaker: str, text: str) -> str:
    """``"Speaker: text"`` (:data:`TAG_FORMAT`) when ``speaker`` is known, else ``text`` (both stripped)."""
    speaker, text = (speaker or "").strip(), (text or "").strip()
    return TAG_FORMAT.format(speaker=speaker, text=text) if speaker else text


def context_string(turns: Sequence[Turn]) -> str:
    """The turns, oldest first, each tagged (:func:`tag_turn`), joined by :data:`TURN_SEPARATOR`."""
    return TURN_SEPARATOR.join(tag_turn(t.speaker, t.text) for t in turns)


class DialogueContext:
    """The last turns of each session (see the module docstring for the rules).

    Args:
        max_turns: turns kept per session (``>= 1``).
        max_sessions: sessions kept (``>= 1``); the least recently used is dropped beyond it.

    Raises:
        ValueError: a bound below 1.
    """

    def __init__(self, max_turns: int, max_sessions: int = 64) -> None:
        if max_turns < 1 or max_sessions < 1:
            raise ValueError(f"max_turns and max_sessions must be >= 1, got {max_turns}, {max_sessions}")
        self.max_turns = int(max_turns)
        self.max_sessions = int(max_sessions)
        self._sessions: OrderedDict[str, deque[Turn]] = OrderedDict()

    def turns(self, session: str, k: int | None = None) -> list[Turn]:
        """The last ``k`` (default ``max_turns``) turns of ``session``, oldest first (a copy)."""
        hist = self._sessions.get(session or "")
        if not hist:
            return []
        k = self.max_turns if k is None else int(k)
        return list(hist)[-k:] if k > 0 else []

    def add(self, session: str, speaker: str, text: str | None, sentence: np.ndarray | None = None) -> bool:
        """Append one utterance to ``session``; returns whether a turn was added (not for empty text)."""
        if not text or not text.strip():
            return False
        key = session or ""
        hist = self._sessions.get(key)
        if hist is None:
            hist = self._sessions[key] = deque(maxlen=self.max_turns)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(key)
        sent = None if sentence is None else np.asarray(sentence, dtype=np.float32)
        hist.append(Turn((speaker or "").strip(), text.strip(), sent))
        return True

    def add_window(self, window: Any, sentence: np.ndarray | None = None) -> bool:
        """:meth:`add` an :class:`~synctva_ros.core.window.UtteranceWindow` (session = its ``dialogue_id``)."""
        return self.add(window.dialogue_id, window_speaker(window), window.transcript, sentence)

    def reset(self) -> None:
        """Forget every session (a new session began, e.g. sensor time went back)."""
        self._sessions.clear()

    def __len__(self) -> int:
        """Number of sessions held."""
        return len(self._sessions)


def window_speaker(window: Any) -> str:
    """The speaker tag of a window: its ``person_id`` when known, else its ``speaker_id``, else ''.

    ``UtteranceWindow.speaker_id`` is the voice id (ROS4HRI ``/humans/voices/<id>/speech``) or the
    transcript's speaker (``Transcript.msg``); ``person_id`` the ROS4HRI person of that voice
    (:mod:`synctva_ros.core.persons`). Objects without these fields read as unknown.
    """
    return str(getattr(window, "person_id", "") or getattr(window, "speaker_id", "") or "")


def dataset_contexts(utterances: Iterable[Any], k: int) -> dict[str, list[Turn]]:
    """``{utterance_id: its previous k turns}`` from a dataset's dialogue order.

    The utterances are grouped by ``dialogue_id`` and ordered by ``utterance_index`` (MELD
    Dialogue_ID/Utterance_ID, IEMOCAP dialogue_id/utterance_index); each dialogue is played
    through a :class:`DialogueContext` as the pipeline plays windows, so an empty utterance adds no
    turn here either.

    Args:
        utterances: objects with ``dialogue_id``, ``utterance_index``, ``utterance_id``, ``speaker``, ``text``.
        k: turns per utterance (``0``: every utterance gets ``[]``).

    Returns:
        The turns of every utterance, oldest first (``sentence`` is ``None``).
    """
    utts = list(utterances)
    if k <= 0:
        return {u.utterance_id: [] for u in utts}
    ctx = DialogueContext(k, max_sessions=1)
    out: dict[str, list[Turn]] = {}
    dialogues: dict[str, list[Any]] = {}
    for u in utts:
        dialogues.setdefault(u.dialogue_id, []).append(u)
    for did, items in dialogues.items():
        ctx.reset()
        for u in sorted(items, key=lambda x: x.utterance_index):
            out[u.utterance_id] = ctx.turns(did)
            ctx.add(did, u.speaker, u.text)
    return out
