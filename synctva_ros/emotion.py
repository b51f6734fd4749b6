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
        probabilities: one probability per class, summing to 1: the fused distribution (the Sync-TVA
            network and, when a face was seen, the facial-expression expert, as a product of calibrated
            experts, :mod:`synctva_ros.model.window_fusion`).
        label, index: the arg-max class and its index in ``class_names``.
        confidence: probability of the winning class, in [0, 1].
        valence, arousal: in [-1, 1], expected value of the per-class table in
            :mod:`synctva_ros.model.affect` under ``probabilities``.
        contributions: modality -> share of the decision in [0, 1]; the shares of
            present, active modalities sum to 1, absent ones are 0 (visual: the face
            expert's share of the fused evidence when it was used).
        present: modality -> whether the window carried that modality's data.
        active: modality -> whether it entered the decision (text/audio: present and
            the branch has trained weights; visual: a face's evidence entered the product).
        transcript: the utterance text ('' if none).
        model: checkpoint name; backend: backend that ran it.
        stage_s: per-stage processing time in seconds (text, audio, visual, fusion).
        utterance_id: id of the utterance (from the transcript).
        modality_probabilities: modality -> its own distribution over ``class_names`` (each in
            [0, 1], summing to 1): "text" and "audio" from the Sync-TVA network run on that
            modality alone (it was trained with modality dropout, so a single modality is an
            input it has seen), "visual" from the facial-expression expert (temperature-scaled,
            mapped onto ``class_names``); a modality that gave none has no key.
        faces_seen: distinct face tracks in the window's processed frames (>= 0).
        face_track_id: track id of the face whose expression was used (>= 1), -1 when none.
        expert_inputs: the fused experts' raw outputs (:attr:`~synctva_ros.model.window_fusion.WindowFusion.inputs`):
            ``"model"`` logits over ``class_names``, ``"visual"`` face probabilities over MELD's seven classes
            (only when a face was seen); ``synctva calibrate`` fits on them.
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
    modality_probabilities: dict[str, list[float]] = field(default_factory=dict)
    faces_seen: int = 0
    face_track_id: int = -1
    expert_inputs: dict[str, list[float]] = field(default_factory=dict)
