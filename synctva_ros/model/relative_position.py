"""Relative position buckets and token positions for the fine-tuned text layers of MPNet-style encoders.

MPNet (Song, Tan, Qin, Lu, Liu: "MPNet: Masked and Permuted Pre-training for Language Understanding",
NeurIPS 2020) adds to every layer's attention scores a learned bias per head that depends only on the
**bucketed relative position** ``key - query`` of the two tokens, as in T5 (Raffel et al.: "Exploring
the Limits of Transfer Learning with a Unified Text-to-Text Transformer", JMLR 2020, Sec. 2.1):

.. math::

    s_{h,ij} = \\frac{q_{h,i}^\\top k_{h,j}}{\\sqrt{d}} + b_h\\big(\\mathrm{bucket}(p_j - p_i)\\big)

The table ``b`` (``(num_buckets, heads)``) is one ``nn.Embedding`` shared by all layers
(``encoder.relative_attention_bias`` in Hugging Face ``MPNetEncoder``). Half of the buckets are for keys
before the query, half for keys after it; within each half, distances below ``num_buckets // 4`` get
a bucket each and longer ones share logarithmically wider buckets up to ``max_distance`` (farther keys all
fall in the last bucket). :func:`relative_position_bucket` follows ``MPNetEncoder.relative_position_bucket``
exactly (checked against the installed transformers by
``test/model/test_relative_position.py``).

The positions ``p`` are those the tokens had in the encoder's input (Hugging Face uses the index in the
right-padded sequence). The fine-tuned layers see the tokens rearranged as
``[special states (S) | prefix (M) | nodes (N)]`` with per-example padding;
:func:`sequence_positions` gives them back their places in the encoder's input (see its docstring for
the layout and why it is exact for :class:`~synctva_ros.features.text.TextEncoder`'s sequences).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["relative_position_bucket", "sequence_positions"]


def relative_position_bucket(relative_position: Tensor, num_buckets: int = 32, max_distance: int = 128) -> Tensor:
    """Bidirectional T5/MPNet bucket of ``relative_position = key position - query position``.

    Args:
        relative_position: integer tensor of any shape.
        num_buckets: total buckets (both directions; MPNet: ``relative_attention_num_buckets`` = 32).
        max_distance: distance from which every key shares the last bucket of its side (MPNet: 128).

    Returns:
        ``long`` tensor of the same shape with values in ``[0, num_buckets)``: keys at or before the
        query in ``[0, num_buckets // 2)``, keys after it in ``[num_buckets // 2, num_buckets)``.
    """
    half = num_buckets // 2
    n = -relative_position.long()
    ret = (n < 0).long() * half
    n = n.abs()
    max_exact = half // 2
    # clamp before the log: n = 0 would give log(0); those entries take the exact branch anyway
    large = max_exact + (torch.log(n.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
                         * (half - max_exact)).long()
    large = torch.clamp(large, max=half - 1)
    return ret + torch.where(n < max_exact, n, large)


def sequence_positions(mask: Tensor, prefix_mask: Tensor | None, n_special: int) -> Tensor:
    """Encoder-input positions of ``[special (S) | prefix (M) | nodes (N)]``, per example.

    Layout (one example with ``m`` real prefix states and ``n`` real nodes; padding may follow each part):

    * special state 0 (``<s>``) at 0: the sequence start;
    * the prefix's real states at ``1 .. m``, in order: with context they are every token between
      ``<s>`` and the utterance (context turns, the pair separators ``</s></s>``, the speaker tag; the
      text extractor hands them over in sequence order for relative-position encoders);
    * the nodes' real states at ``m + 1 .. m + n``: the utterance's word pieces are contiguous and
      follow the prefix directly (without context, ``<s>`` precedes them directly);
    * special state ``k >= 1`` at ``m + n + k``: the closing ``</s>`` right after the utterance.

    That is exactly where the tokens were in the encoder's input for a single sequence
    ``<s> utterance </s>`` and for the pair ``<s> context </s></s> tag utterance </s>``. Padded slots
    get arbitrary positions (they are masked as keys and their outputs are dropped).

    Args:
        mask: ``(B, N)`` bool, True = real node.
        prefix_mask: ``(B, M)`` bool, True = real prefix state, or ``None`` (no prefix: ``M = 0``).
        n_special: ``S`` (>= 0).

    Returns:
        ``(B, S + M + N)`` long.
    """
    mask = mask.to(torch.bool)
    b = mask.shape[0]
    m = (prefix_mask.to(torch.long).sum(1, keepdim=True) if prefix_mask is not None
         else torch.zeros(b, 1, dtype=torch.long, device=mask.device))
    nodes = m + torch.cumsum(mask.to(torch.long), 1)
    n = mask.to(torch.long).sum(1, keepdim=True)
    parts = []
    if n_special:
        k = torch.arange(n_special, device=mask.device, dtype=torch.long)[None]
        parts.append(torch.where(k == 0, torch.zeros_like(k), m + n + k))
    if prefix_mask is not None:
        parts.append(torch.cumsum(prefix_mask.to(torch.long), 1))
    parts.append(nodes)
    return torch.cat(parts, 1)
