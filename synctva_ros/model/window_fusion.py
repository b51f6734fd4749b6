r"""One window's product of experts: the Sync-TVA network ("model") and the face evidence ("visual").

The pipeline (:mod:`synctva_ros.pipeline`) gives, per window, the network's logits :math:`z` over the
checkpoint's classes (its trained modalities together, text and audio in the shipped checkpoints), the same
network's logits with one modality alone (the network was trained with modality dropout, so a window with
only text or only audio is an input it has seen), and the face evidence :math:`q` (MELD-ordered
probabilities, :mod:`synctva_ros.features.faces.evidence`) or None. :func:`fuse_window` returns

* the fused distribution of :class:`~synctva_ros.model.experts.ExpertFusion` (temperatures, weights, prior,
  class map: the checkpoint's ``expert_fusion`` block or its defaults,
  :func:`~synctva_ros.checkpoint.fusion.fusion_for_manifest`): with the visual expert absent it is the
  model's own calibrated posterior (:math:`\operatorname{softmax}(z / T_{model})`, with the default
  :math:`T = 1` exactly the network's softmax);
* each modality's distribution as it enters or would enter the fusion: ``text`` and ``audio`` =
  :math:`\operatorname{softmax}(z_m / T_{model})` of the single-modality runs, ``visual`` = the face
  evidence temperature-scaled and mapped onto the checkpoint's classes;
* contributions: the network's own per-modality shares, scaled by the model expert's share of the fused
  evidence, plus the visual expert's share. A share is measured on each expert's weighted evidence
  :math:`e_k = w_k (\log p_k - \log \pi)` centred over the classes (a constant does not change the
  posterior): :math:`s_k = \lVert e_k \rVert_2 / \sum_j \lVert e_j \rVert_2` (an expert that says nothing
  beyond the prior gets 0). The shares of the used modalities still sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from synctva_ros.core.modalities import MODALITIES
from synctva_ros.model.experts import ExpertFusion, expert_log_posterior, product_of_experts

__all__ = ["MODEL_EXPERT", "VISUAL_EXPERT", "WindowFusion", "fuse_window", "evidence_shares", "network_subsets"]

MODEL_EXPERT = "model"
VISUAL_EXPERT = "visual"
#: Probabilities are floored at this before the log (a face probability of exactly 0).
_FLOOR = 1e-12


@dataclass
class WindowFusion:
    """The fusion of one window.

    Attributes:
        probabilities: ``(C,)`` fused, float64, summing to 1.
        modality_probabilities: ``{"text" | "audio" | "visual": (C,)}`` for the modalities that gave a
            distribution (absent keys: none).
        contributions: ``(3,)`` in :data:`~synctva_ros.core.modalities.MODALITIES` order, in [0, 1].
        visual_used: whether the visual evidence entered the product.
        shares: ``{expert: share of the fused evidence}``.
        inputs: the experts' raw outputs as they came in, before temperatures and class maps:
            ``{"model": (C,) logits, "visual": (7,) MELD-ordered face probabilities}`` (``visual`` only
            when a face was seen); what ``synctva calibrate`` fits the temperatures and weights on.
    """

    probabilities: np.ndarray
    modality_probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    contributions: np.ndarray = field(default_factory=lambda: np.zeros(len(MODALITIES)))
    visual_used: bool = False
    shares: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)


def evidence_shares(log_posteriors: Mapping[str, np.ndarray], prior: np.ndarray,
                    weights: Mapping[str, float]) -> dict[str, float]:
    r"""Each expert's share :math:`s_k` of the fused evidence (see the module).

    Args:
        log_posteriors: ``{expert: (C,) log-probabilities}``; prior: ``(C,)``; weights: ``{expert: w}`` (1 if missing).

    Returns:
        ``{expert: share in [0, 1]}``, summing to 1 (all equal when no expert moves away from the prior).
    """
    log_pi = np.log(prior)
    norms = {}
    for k, lp in log_posteriors.items():
        e = float(weights.get(k, 1.0)) * (np.asarray(lp, np.float64) - log_pi)
        e = e[np.isfinite(e)]
        norms[k] = float(np.linalg.norm(e - e.mean())) if e.size else 0.0
    total = sum(norms.values())
    if total <= 0:
        return {k: 1.0 / len(norms) for k in norms}
    return {k: v / total for k, v in norms.items()}


def fuse_window(fusion: ExpertFusion, model_logits: np.ndarray, model_contributions: np.ndarray,
                modality_logits: Mapping[str, np.ndarray], visual_probs: np.ndarray | None) -> WindowFusion:
    """Fuse one window (see the module).

    Args:
        fusion: the checkpoint's experts (``"model"``, ``"visual"``); an expert without a temperature or
            weight there uses ``T = 1``, ``w = 1``; a visual weight of 0 keeps the face out of the product
            (its distribution is still reported).
        model_logits: ``(C,)`` the network's logits with every present modality.
        model_contributions: ``(3,)`` the network's per-modality shares (text, audio, visual).
        modality_logits: ``{"text" | "audio": (C,)}`` logits of single-modality runs.
        visual_probs: ``(7,)`` MELD-ordered face evidence, or None (no face, face expert off).

    Returns:
        :class:`WindowFusion`.

    Raises:
        ValueError: NaN inputs or shapes that do not fit the fusion's prior or class map.

    Shapes:
        ``model_logits (C,)``, ``visual_probs (7,)`` -> ``probabilities (C,)``.
    """
    z = np.asarray(model_logits, np.float64)[None]
    t_model = fusion.temperatures.get(MODEL_EXPERT, 1.0)
    lps: dict[str, np.ndarray] = {MODEL_EXPERT: expert_log_posterior(z, t_model)}
    mod: dict[str, np.ndarray] = {}
    for m, lg in modality_logits.items():
        mod[m] = np.exp(expert_log_posterior(np.asarray(lg, np.float64)[None], t_model))[0]
    use_visual = visual_probs is not None and fusion.weights.get(VISUAL_EXPERT, 1.0) > 0
    if visual_probs is not None:
        q = np.log(np.maximum(np.asarray(visual_probs, np.float64), _FLOOR))[None]
        lv = expert_log_posterior(q, fusion.temperatures.get(VISUAL_EXPERT, 1.0),
                                  fusion.class_maps.get(VISUAL_EXPERT))
        mod[VISUAL_EXPERT] = np.exp(lv[0])
        if use_visual:
            lps[VISUAL_EXPERT] = lv
    fused = np.exp(product_of_experts(lps, fusion.prior, fusion.weights))[0]
    contrib = np.asarray(model_contributions, np.float64).copy()
    shares = {MODEL_EXPERT: 1.0}
    if use_visual:
        shares = evidence_shares({k: v[0] for k, v in lps.items()}, fusion.prior, fusion.weights)
        contrib = contrib * shares[MODEL_EXPERT]
        contrib[MODALITIES.index("visual")] += shares[VISUAL_EXPERT]
    inputs = {MODEL_EXPERT: z[0].copy()}
    if visual_probs is not None:
        inputs[VISUAL_EXPERT] = np.asarray(visual_probs, np.float64).copy()
    return WindowFusion(fused / fused.sum(), mod, contrib, use_visual, shares, inputs)


def network_subsets(feats: Any) -> tuple[np.ndarray, list[str]]:
    """The modality subsets the pipeline asks the network for (one backend call): all present modalities first,
    then each of text and audio alone when it is present and not the only modality.

    Args:
        feats: a :class:`~synctva_ros.core.batch.UtteranceFeatures` (``text``, ``audio``, ``visual`` or ``None``).

    Returns:
        ``(keep, alone)``: ``keep`` ``(S, 3)`` bool in :data:`~synctva_ros.core.modalities.MODALITIES` order
        (``S = 1``: the window's only modality, or none), ``alone`` the modalities of rows ``1..S-1`` (with
        ``S = 1``, the one modality whose distribution is the network's own, if any).
    """
    present = [m for m in ("text", "audio") if getattr(feats, m) is not None]
    if len(present) == 1 and feats.visual is None:
        return np.ones((1, 3), bool), present
    return np.array([[True] * 3] + [[m == k for k in MODALITIES] for m in present], bool), present
