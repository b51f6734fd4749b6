"""The result of recognising one utterance: the ROS-free twin of ``EmotionState``."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EmotionResult"]


@dataclass
class EmotionResult:
    """Emotion of one utterance window.

    Attributes:
        start, end: window bounds, seconds (sensor time).
        class_names: class names in model output order.
        probabilities: one probability per class, summing to 1.
        label, index: the arg-max class and its index in ``class_names``.
        confidence: probability of the winning class, in [0, 1].
        valence, arousal: in [-1, 1], expected value of the per-class table in
            :mod:`synctva_ros.model.affect` under ``probabilities``.
        contributions: modality -> share of the decision in [0, 1]; the shares of
            present, active modalities sum to 1, absent ones are 0.
        present: modality -> whether the window carried that modality's data.
        active: modality -> whether the model used it (present *and* its branch
            has trained weights).
        transcript: the utterance text ('' if none).
        model: checkpoint name; backend: backend that ran it.
        stage_s: per-stage processing time in seconds (text, audio, visual, fusion).
        utterance_id: id of the utterance (from the transcript).
    """

    start: float
    end: float
    class_names: list[str]
    probabilities: list[float]
    label: str
    index: int
    confidence: float
    valence: float
    arousal: float
    contributions: dict[str, float]
    present: dict[str, bool]
    active: dict[str, bool]
    transcript: str = ""
    model: str = ""
    backend: str = ""
    stage_s: dict[str, float] = field(default_factory=dict)
    utterance_id: str = ""
