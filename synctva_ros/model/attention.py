"""Masked attention primitives shared by MSDE, CAF and the dialogue-context attention.

Everything here is NaN-safe when a row has *no* valid key (an absent modality,
an utterance without dialogue context): the masked scores are filled with the
dtype's most negative finite value, the softmax is taken, and the result is
multiplied by the mask, so a fully masked row gets all-zero weights instead of
``NaN``. The ops used (``masked_fill``, ``softmax``, ``matmul``) export to ONNX
at opset 18.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["masked_softmax", "masked_mean", "MaskedMultiheadAttention", "AdditiveMask", "additive_mask",
           "softmax_last", "MASK_BIAS"]

#: What :func:`additive_mask` adds to a masked score: far below any attention logit (``exp(-1e4)`` is 0 in fp32 and
#: fp16) and finite in fp16 (a ``finfo.min`` constant becomes ``-inf`` there, and a fully masked row ``NaN``).
MASK_BIAS = -1.0e4


def masked_softmax(scores: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Softmax of ``scores`` over ``dim`` restricted to ``mask``; fully masked slices give zeros.

    Args:
        scores: any float tensor.
        mask: bool tensor broadcastable to ``scores`` (True = valid).
        dim: dimension to normalise over.

    Returns:
        Tensor shaped like ``scores``; zero where ``mask`` is False, summing to 1 over
        ``dim`` where at least one entry is valid, all zero otherwise.
    """
    neg = torch.finfo(scores.dtype).min
    filled = scores.masked_fill(~mask, neg)
    prob = torch.softmax(filled, dim=dim)
    return prob * mask.to(prob.dtype)


class AdditiveMask(NamedTuple):
    """A boolean mask prepared once for many softmaxes over the last axis (:func:`additive_mask`)."""

    #: ``0`` where valid, :data:`MASK_BIAS` elsewhere; added to the scores.
    bias: Tensor
    #: ``1`` where valid, ``0`` elsewhere; multiplies the probabilities (a fully masked row gives zeros).
    keep: Tensor


def additive_mask(mask: Tensor, dtype: torch.dtype) -> AdditiveMask:
    """``mask`` (bool, any shape broadcastable to the scores; True = valid) as an :class:`AdditiveMask` of ``dtype``.

    :func:`softmax_last` with it equals :func:`masked_softmax` over the last axis up to float rounding as long as
    every score of a row, masked or not, lies within about ``-MASK_BIAS - 100`` of the row's largest valid score
    (graph-attention logits are a few units, and :class:`~synctva_ros.model.graphs.CrossModalGraph` zeroes masked
    nodes, so theirs are 0); unlike :func:`masked_softmax` it does not hold for arbitrary values at masked positions.
    It needs no ``Where`` per call (an additive bias and a multiply broadcast cheaply in onnxruntime, and one mask
    serves every layer and head).
    """
    keep = mask.to(dtype)
    return AdditiveMask((1.0 - keep) * MASK_BIAS, keep)


def softmax_last(scores: Tensor, mask: AdditiveMask) -> Tensor:
    """Softmax of ``scores`` over the last axis restricted to ``mask`` (:func:`additive_mask`); fully masked rows
    give zeros. Shapes: ``scores`` any, ``mask.bias`` / ``mask.keep`` broadcastable to it."""
    return torch.softmax(scores + mask.bias, dim=-1) * mask.keep


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` ``(B, N, F)`` over the valid nodes of ``mask`` ``(B, N)``; ``(B, F)``, zeros if none."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class MaskedMultiheadAttention(nn.Module):
    r"""Scaled dot-product multi-head attention with a boolean key mask (Vaswani et al. 2017).

    .. math::
        \mathrm{head}_h = \mathrm{softmax}_{\mathcal{M}}\!\left(\frac{Q_h K_h^\top}{\sqrt{d}}\right) V_h,
        \qquad \mathrm{out} = W_O [\mathrm{head}_1; \dots; \mathrm{head}_H]

    where :math:`\mathrm{softmax}_{\mathcal{M}}` is :func:`masked_softmax`. A query whose
    keys are all masked receives ``W_O 0 + b_O`` (a constant), never ``NaN``.

    Args:
        dim (int): query width and output width ``D``.
        heads (int): number of heads; ``dim`` must be divisible by it.
        dropout (float): dropout on the attention weights (training only). (default: ``0.0``)
        kdim (int, optional): key/value input width (default: ``dim``).

    Shapes:
        - query: ``(B, Nq, D)``; key: ``(B, Nk, kdim)``
        - mask: ``(B, Nk)`` (same keys for every query) or ``(B, Nq, Nk)``, bool, True = attend
        - output: ``(B, Nq, D)``

    Raises:
        ValueError: ``dim`` not divisible by ``heads``.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, kdim: int | None = None) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"attention width {dim} is not divisible by heads={heads}")
        kdim = kdim or dim
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kdim, dim)
        self.v_proj = nn.Linear(kdim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, key: Tensor, mask: Tensor) -> Tensor:
        b, nq = query.shape[0], query.shape[1]
        nk = key.shape[1]
        h, d = self.heads, self.head_dim
        q = self.q_proj(query).reshape(b, nq, h, d).transpose(1, 2)
        k = self.k_proj(key).reshape(b, nk, h, d).transpose(1, 2)
        v = self.v_proj(key).reshape(b, nk, h, d).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))  # (B, h, Nq, Nk)
        m = mask[:, None, None, :] if mask.dim() == 2 else mask[:, None, :, :]
        prob = self.dropout(masked_softmax(scores, m, dim=-1))
        out = torch.matmul(prob, v).transpose(1, 2).reshape(b, nq, h * d)
        return self.out_proj(out)
