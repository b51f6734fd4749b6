r"""Calibration of experts: temperature scaling, the expected calibration error, and expert weights.

* :func:`fit_temperature`: temperature scaling (C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On calibration
  of modern neural networks", ICML 2017, Sec. 4.2): one scalar :math:`T > 0` minimising the negative
  log-likelihood of held-out labels under :math:`\operatorname{softmax}(z / T)`. The NLL is convex in
  :math:`1/T`; it is minimised over :math:`\log T` in ``[log T_min, log T_max]`` by bounded Brent search
  (``scipy.optimize.minimize_scalar``). The argmax, and so the accuracy, never changes.
* :func:`expected_calibration_error`: ECE with 15 equal-width confidence bins (Guo et al., Eq. 3;
  Naeini, Cooper, Hauskrecht, AAAI 2015): :math:`\sum_b \frac{|B_b|}{n} |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|`.
* :func:`fit_weights`: the product-of-experts weights :math:`w_e \ge 0`
  (:func:`~synctva_ros.model.experts.product_of_experts`) minimising the fused NLL on aligned, labelled
  data with the temperatures fixed. The fused log-posterior is affine in :math:`w`, so the NLL is convex in
  :math:`w`; L-BFGS-B with the bounds :math:`w_e \ge 0` and the analytic gradient finds the optimum. An
  optional ridge :math:`\frac{\lambda}{2} \sum_e (w_e - 1)^2` pulls the weights to the default 1 when there
  is little aligned data.

Inputs are checked: an empty set, NaN logits and labels outside ``[0, C)`` raise ``ValueError``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from synctva_ros.model.experts import log_softmax, normalise_prior

__all__ = ["N_BINS", "check_logits_labels", "nll", "expected_calibration_error", "TemperatureFit",
           "fit_temperature", "WeightFit", "fit_weights"]

#: ECE bins (Guo et al. 2017).
N_BINS = 15


def check_logits_labels(logits: np.ndarray, labels: np.ndarray, allow_neg_inf: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Validate a ``(N, C)`` score array and ``(N,)`` integer labels.

    Args:
        logits: logits or log-probabilities.
        labels: class indices.
        allow_neg_inf: accept ``-inf`` (log of a zero probability) but never ``+inf`` or NaN.

    Returns:
        ``(float64 logits, int64 labels)``.

    Raises:
        ValueError: empty, wrong shapes, NaN or infinite logits, non-integer labels or a label outside
            ``[0, C)``.
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"need a non-empty (N, C) array with C >= 2, got shape {z.shape}")
    if y.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},), got {y.shape}")
    if np.isnan(z).any():
        raise ValueError("logits contain NaN")
    if np.isposinf(z).any() or (not allow_neg_inf and np.isinf(z).any()):
        raise ValueError("logits contain infinite values")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= z.shape[1])
    if bad.any():
        raise ValueError(f"labels outside the classes [0, {z.shape[1]}): {sorted(set(y[bad].tolist()))[:10]}")
    return z, y


def nll(log_probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels`` under ``(N, C)`` log-probabilities (nats)."""
    lp, y = np.asarray(log_probs, np.float64), np.asarray(labels, np.int64)
    return float(-lp[np.arange(len(y)), y].mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error of the top-class confidence, ``n_bins`` equal-width bins on (0, 1].

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` class indices.
        n_bins: number of bins (15 in Guo et al.).

    Returns:
        ECE in [0, 1].

    Raises:
        ValueError: as :func:`check_logits_labels`, or ``n_bins < 1``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p, y = check_logits_labels(probs, labels)
    conf, pred = p.max(1), p.argmax(1)
    correct = (pred == y).astype(np.float64)
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


@dataclass(frozen=True)
class TemperatureFit:
    """Result of :func:`fit_temperature` (NLL in nats per example, ECE in [0, 1]).

    ``at_bound``: the optimum lies at ``t_min`` or ``t_max`` (e.g. separable data drives ``T`` to 0).
    """

    temperature: float
    n: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    accuracy: float
    at_bound: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nll_at(z: np.ndarray, y: np.ndarray, t: float) -> float:
    return nll(log_softmax(z / t), y)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, t_min: float = 0.01, t_max: float = 100.0
                    ) -> TemperatureFit:
    """Fit the temperature ``T`` minimising the NLL of ``labels`` under ``softmax(logits / T)``.

    Args:
        logits: ``(N, C)`` held-out logits (log-probabilities are fine; ``-inf`` is accepted).
        labels: ``(N,)`` class indices in ``[0, C)``.
        t_min, t_max: search range, ``0 < t_min < 1 < t_max``.

    Returns:
        :class:`TemperatureFit` with the NLL and ECE (:data:`N_BINS` bins) before (``T = 1``) and after.

    Raises:
        ValueError: as :func:`check_logits_labels`; a bad range.
    """
    if not 0 < t_min < 1 < t_max:
        raise ValueError(f"need 0 < t_min < 1 < t_max, got {t_min}, {t_max}")
    z, y = check_logits_labels(logits, labels, allow_neg_inf=True)
    if np.isneginf(z[np.arange(len(y)), y]).any():
        raise ValueError("some labels have logit -inf (probability 0): the NLL is infinite for every T; "
                         "clip the probabilities before taking their log")
    lo, hi = np.log(t_min), np.log(t_max)
    res = minimize_scalar(lambda s: _nll_at(z, y, float(np.exp(s))), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-7})
    s = float(res.x)
    t = float(np.exp(s)) if _nll_at(z, y, float(np.exp(s))) <= _nll_at(z, y, 1.0) else 1.0
    before, after = log_softmax(z), log_softmax(z / t)
    return TemperatureFit(temperature=t, n=len(y), nll_before=nll(before, y), nll_after=nll(after, y),
                          ece_before=expected_calibration_error(np.exp(before), y),
                          ece_after=expected_calibration_error(np.exp(after), y),
                          accuracy=float((z.argmax(1) == y).mean()),
                          at_bound=bool(min(s - lo, hi - s) < 1e-3))


@dataclass(frozen=True)
class WeightFit:
    """Result of :func:`fit_weights`: the weights and the fused NLL / ECE / accuracy with all weights 1
    (``*_before``) and with the fitted weights (``*_after``)."""

    weights: dict[str, float]
    n: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    accuracy_before: float
    accuracy_after: float
    converged: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_weights(log_posteriors: Mapping[str, np.ndarray], labels: np.ndarray, prior: np.ndarray | list[float],
                present: Mapping[str, np.ndarray] | None = None, ridge: float = 0.0, w_max: float = 10.0
                ) -> WeightFit:
    r"""Fit the product-of-experts weights :math:`w_e \in [0, w_{max}]` minimising the fused NLL.

    The fused logits are :math:`f = \log \pi + \sum_e w_e m_e (\log p_e - \log \pi)` (:math:`m_e` the
    presence mask), so :math:`\partial\,\mathrm{NLL} / \partial w_e = \operatorname{mean}_i
    \sum_c (q_{ic} - [c = y_i])\, a_{eic}` with :math:`q = \operatorname{softmax}(f)`,
    :math:`a_e = m_e (\log p_e - \log \pi)`.

    Args:
        log_posteriors: ``{expert: (N, C)}`` calibrated log-posteriors over the common classes (temperatures
            applied, classes mapped: :meth:`~synctva_ros.model.experts.ExpertFusion.log_posteriors`).
        labels: ``(N,)`` class indices.
        prior: ``(C,)`` class prior (probabilities or counts).
        present: ``{expert: (N,) bool}``; rows where an expert is missing are False (values ignored there).
        ridge: :math:`\lambda \ge 0`, pulls weights towards 1.
        w_max: upper bound of each weight.

    Returns:
        :class:`WeightFit`.

    Raises:
        ValueError: no expert, empty data, shape mismatch, NaN or ``+inf`` in a present row, labels outside
            ``[0, C)``, a bad prior, ``ridge < 0``.
    """
    names = sorted(log_posteriors)
    if not names:
        raise ValueError("fit_weights needs at least one expert")
    if ridge < 0 or not w_max > 0:
        raise ValueError(f"need ridge >= 0 and w_max > 0, got {ridge}, {w_max}")
    present = dict(present or {})
    y = np.asarray(labels)
    a = []
    for k in names:
        lp = np.asarray(log_posteriors[k], np.float64)
        if lp.ndim != 2:
            raise ValueError(f"log-posteriors of {k!r} must be (N, C), got shape {lp.shape}")
        mask = np.asarray(present.get(k, np.ones(len(lp), bool)), bool)
        if mask.shape != (lp.shape[0],):
            raise ValueError(f"present[{k!r}] must have shape ({lp.shape[0]},), got {mask.shape}")
        filled = np.where(mask[:, None], lp, 0.0)
        check_logits_labels(filled, y, allow_neg_inf=True)
        a.append(filled)
    if len({x.shape for x in a}) != 1:
        raise ValueError(f"experts' log-posteriors must share one (N, C) shape, got {[x.shape for x in a]}")
    n, c = a[0].shape
    log_pi = np.log(normalise_prior(prior, c))
    masks = [np.asarray(present.get(k, np.ones(n, bool)), bool)[:, None] for k in names]
    with np.errstate(invalid="ignore"):
        a = np.stack([np.where(m, x - log_pi, 0.0) for x, m in zip(a, masks)])  # (E, N, C)
    if np.isinf(a).any():
        raise ValueError("a present expert gives probability 0 to a class (-inf log-posterior): "
                         "its weight cannot be fitted; clip its probabilities")
    onehot = np.eye(c)[y]

    def loss_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        f = log_pi + np.tensordot(w, a, 1)
        lq = log_softmax(f)
        loss = -float((lq * onehot).sum(1).mean()) + 0.5 * ridge * float(((w - 1.0) ** 2).sum())
        g = np.einsum("nc,enc->e", np.exp(lq) - onehot, a) / n + ridge * (w - 1.0)
        return loss, g

    res = minimize(loss_grad, np.ones(len(names)), jac=True, method="L-BFGS-B",
                   bounds=[(0.0, w_max)] * len(names), options={"maxiter": 500})
    w = np.clip(res.x, 0.0, w_max)
    ones = log_softmax(log_pi + a.sum(0))
    fit = log_softmax(log_pi + np.tensordot(w, a, 1))
    return WeightFit(weights={k: float(v) for k, v in zip(names, w)}, n=n, nll_before=nll(ones, y),
                     nll_after=nll(fit, y), ece_before=expected_calibration_error(np.exp(ones), y),
                     ece_after=expected_calibration_error(np.exp(fit), y),
                     accuracy_before=float((ones.argmax(1) == y).mean()),
                     accuracy_after=float((fit.argmax(1) == y).mean()), converged=bool(res.success))
