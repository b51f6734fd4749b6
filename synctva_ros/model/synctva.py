"""The Sync-TVA model (Deng, Lu, Liao, Wu, Wei, arXiv 2507.21395, 2025).

Pipeline (paper Sec. 3): per-modality node features -> MSDE per modality
(:mod:`~synctva_ros.model.msde`) -> three heterogeneous cross-modal graphs with graph
attention (:mod:`~synctva_ros.model.graphs`: visual-audio, text-visual, audio-text) ->
attention-based interaction fusion, CAF and classifier (:mod:`~synctva_ros.model.fusion`).

Robot-specific additions (documented choices, not in the paper):

* **Missing modalities.** A modality is *present* in a row when its mask has a True
  node and its branch is *active*. Absent modalities are zeroed at the input and
  masked everywhere, so their values never influence the row (tested). A row with no
  present modality gets all-zero logits (uniform probabilities) and zero contributions.
* **Inactive branches.** ``active[m] = False`` (e.g. no visual encoder weights) makes
  the branch's inputs ignored and the modality reported absent; its MSDE and the graph convs into and out of
  it are skipped (they would only produce what an absent modality gives: zeros and the convs' biases).
* **Modality dropout** (training only, ``ModelConfig.modality_dropout``): every present
  modality of a row is dropped with that probability; if a row would lose all of them
  one random present modality is kept.
* **Dialogue context** (``ModelConfig.context_turns > 0``): see fusion.
* **Fine-tuned text-encoder top layers** (``ModelConfig.text_top_layers = K > 0``): the text
  nodes are the encoder's layer-``features.text_layer`` states and the model runs the encoder's
  next K layers on them (:mod:`~synctva_ros.model.text_top`) before MSDE. The layers are
  attached with :meth:`SyncTVA.attach_text_top` (from the pretrained encoder for training, from
  checkpoint deltas for inference: both in :mod:`synctva_ros.checkpoint`, the model reads no
  weights); until then ``forward`` refuses to run the text branch.

``forward`` takes positional tensors so that it exports to ONNX (opset >= 18) with
dynamic batch and node axes.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import Tensor, nn

from synctva_ros.config import ModelConfig
from synctva_ros.core.batch import Batch
from synctva_ros.model.fusion import GRAPHS, SyncTVAFusion
from synctva_ros.model.graphs import CrossModalGraph
from synctva_ros.model.msde import MSDE
from synctva_ros.core.modalities import MODALITIES

__all__ = ["SyncTVA"]


class SyncTVA(nn.Module):
    """Sync-TVA emotion classifier.

    Args:
        cfg: architecture (:class:`~synctva_ros.config.ModelConfig`); ``len(cfg.class_names)`` = ``C``.
        dims: input feature width per modality, ``{"text": F_t, "audio": F_a, "visual": F_v}``.
        active: which branches exist (default: all). An inactive branch's inputs are ignored.

    Shapes (``forward``):
        - ``{m}``: ``(B, N_m, F_m)`` float; ``{m}_mask``: ``(B, N_m)`` bool; ``{m}_time``: ``(B, N_m)`` in [0, 1]
        - context: ``(B, K, F_t)``, context_mask ``(B, K)`` bool, or ``None``
        - text_prefix: ``(B, M, F_t)``, text_prefix_mask ``(B, M)`` bool, or ``None``: the dialogue
          context's word-piece states, attended by the fine-tuned text layers when they were trained
          with them (:class:`~synctva_ros.model.text_top.TextTopLayers`, ``context_keys``); else ignored
        - returns logits ``(B, C)`` and contributions ``(B, 3)`` (text, audio, visual) in [0, 1],
          summing to 1 over present, active modalities, 0 for absent ones
        - ``forward_subsets(keep (S, 3) bool, *inputs)``: logits ``(B, S, C)``, contributions ``(B, S, 3)``
          for S modality subsets of the same rows in one pass (the text layers run once)

    Raises:
        ValueError: a modality missing from ``dims``, a non-positive width, unknown keys in
            ``active``, no class names, ``hidden`` not divisible by ``heads``.
        RuntimeError (``forward``): ``text_top_layers > 0``, the text branch is active and no top
            layers are attached.
    """

    def __init__(self, cfg: ModelConfig, dims: dict[str, int], active: dict[str, bool] | None = None) -> None:
        super().__init__()
        missing = [m for m in MODALITIES if m not in dims]
        if missing:
            raise ValueError(f"dims lacks the feature width of {missing}")
        if any(int(dims[m]) <= 0 for m in MODALITIES):
            raise ValueError(f"feature widths must be positive, got {dims}")
        active = dict(active) if active is not None else {m: True for m in MODALITIES}
        unknown = set(active) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities in active: {sorted(unknown)}")
        if not cfg.class_names:
            raise ValueError("ModelConfig.class_names is empty")
        if cfg.hidden % cfg.heads != 0:
            raise ValueError(f"hidden={cfg.hidden} is not divisible by heads={cfg.heads}")
        self.cfg = copy.deepcopy(cfg)
        self.dims = {m: int(dims[m]) for m in MODALITIES}
        self.active = {m: bool(active.get(m, True)) for m in MODALITIES}
        self.class_names = list(cfg.class_names)
        self.graph_impl = cfg.graph_impl
        self.modality_dropout = float(cfg.modality_dropout)
        self.register_buffer("active_mask", torch.tensor([self.active[m] for m in MODALITIES]), persistent=False)
        h = cfg.hidden
        self.msde = nn.ModuleDict({m: MSDE(self.dims[m], h, cfg.heads, cfg.dropout) for m in MODALITIES})
        self.graphs = nn.ModuleDict({
            g: CrossModalGraph(a, b, h, cfg.heads, cfg.graph_layers, cfg.dropout, cfg.temporal_neighbours,
                               cfg.align_tolerance, cfg.gat_variant, (self.active[a], self.active[b]))
            for g, (a, b) in GRAPHS.items()})
        ctx_dim = self.dims["text"] if cfg.context_turns > 0 else 0
        self.fusion = SyncTVAFusion(h, cfg.heads, cfg.dropout, len(self.class_names), ctx_dim)
        self.text_top_layers = int(cfg.text_top_layers)
        self.register_module("text_top", None)

    def attach_text_top(self, top: nn.Module) -> None:
        """Attach the encoder's top layers (:class:`~synctva_ros.model.text_top.TextTopLayers`).

        Raises:
            ValueError: ``text_top_layers`` is 0, or the layer count / width does not match.
        """
        if self.text_top_layers == 0:
            raise ValueError("ModelConfig.text_top_layers is 0: this model has no text top layers")
        n, width = len(getattr(top, "layers", [])), int(getattr(top, "dim", -1))
        if n != self.text_top_layers or width != self.dims["text"]:
            raise ValueError(f"top layers ({n} layers of width {width}) do not fit text_top_layers="
                             f"{self.text_top_layers}, text width {self.dims['text']}")
        self.text_top = top

    def detach_text_top(self) -> nn.Module | None:
        """Remove and return the attached top layers (``None`` when there are none)."""
        top = self.text_top
        self.text_top = None
        return top

    @property
    def num_classes(self) -> int:
        """Number of output classes ``C``."""
        return len(self.class_names)

    def architecture(self) -> dict:
        """The ModelConfig as a plain dict (what checkpoints store)."""
        return dataclasses.asdict(self.cfg)

    def _drop_modalities(self, present: Tensor) -> Tensor:
        """Training-time modality dropout on ``present`` ``(B, 3)``; never drops all present ones."""
        drop = (torch.rand(present.shape, device=present.device) < self.modality_dropout) & present
        kept = present & ~drop
        lost_all = present.any(dim=1) & ~kept.any(dim=1)
        # keep one random present modality in rows that would lose all
        pick = torch.rand(present.shape, device=present.device) * present.to(torch.float32)
        keep_one = torch.zeros_like(present).scatter(1, pick.argmax(dim=1, keepdim=True), True)
        return torch.where(lost_all.unsqueeze(1), keep_one & present, kept)

    def _text_states(self, text: Tensor, text_mask: Tensor, text_prefix: Tensor | None,
                     text_prefix_mask: Tensor | None) -> Tensor:
        """The text nodes after the fine-tuned top layers (unchanged without them or with the branch off)."""
        if self.text_top_layers > 0 and self.active["text"]:
            if self.text_top is None:
                raise RuntimeError(
                    f"this model fine-tunes the text encoder's top {self.text_top_layers} layers but none are "
                    "attached: load them with synctva_ros.checkpoint.restore_text_top (checkpoint deltas + "
                    "base encoder) or build_text_top (training)")
            text = self.text_top(text, text_mask, text_prefix, text_prefix_mask)
        return text

    def forward(self, text: Tensor, text_mask: Tensor, text_time: Tensor,
                audio: Tensor, audio_mask: Tensor, audio_time: Tensor,
                visual: Tensor, visual_mask: Tensor, visual_time: Tensor,
                context: Tensor | None = None, context_mask: Tensor | None = None,
                text_prefix: Tensor | None = None, text_prefix_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        text = self._text_states(text, text_mask, text_prefix, text_prefix_mask)
        return self._fuse(text, text_mask, text_time, audio, audio_mask, audio_time, visual, visual_mask,
                          visual_time, context, context_mask)

    def forward_subsets(self, keep: Tensor, text: Tensor, text_mask: Tensor, text_time: Tensor,
                        audio: Tensor, audio_mask: Tensor, audio_time: Tensor,
                        visual: Tensor, visual_mask: Tensor, visual_time: Tensor,
                        context: Tensor | None = None, context_mask: Tensor | None = None,
                        text_prefix: Tensor | None = None,
                        text_prefix_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`forward` once per modality subset, with the text layers run once.

        Subset ``s`` is :meth:`forward` on the same inputs with the masks of the modalities that
        ``keep[s]`` leaves out set to False (those modalities absent), which is what a batch holding only
        the kept modalities gives. The fine-tuned text layers (:mod:`~synctva_ros.model.text_top`, the
        costly part) do not depend on the other modalities, so they run once per row; MSDE, the graphs
        and the fusion run on ``S * B`` rows. Equal to separate :meth:`forward` calls up to float rounding
        (about 1e-7 in fp32, ``test/model/test_synctva_subsets.py``).

        Shapes:
            ``keep`` ``(S, 3)`` bool in :data:`~synctva_ros.core.modalities.MODALITIES` order; the other
            inputs as :meth:`forward` (batch ``B``) -> logits ``(B, S, C)``, contributions ``(B, S, 3)``.
        """
        text = self._text_states(text, text_mask, text_prefix, text_prefix_mask)
        keep = keep.to(torch.bool)
        s, b = keep.shape[0], text.shape[0]

        def rows(x: Tensor | None) -> Tensor | None:  # (B, ...) -> (S * B, ...), subset-major
            return None if x is None else x.unsqueeze(0).expand(s, *([-1] * x.dim())).flatten(0, 1)

        def kept(mask: Tensor, i: int) -> Tensor:  # (B, N) -> (S * B, N), False where subset drops i
            return (mask.to(torch.bool).unsqueeze(0) & keep[:, i].reshape(s, 1, 1)).flatten(0, 1)

        logits, contrib = self._fuse(rows(text), kept(text_mask, 0), rows(text_time),
                                     rows(audio), kept(audio_mask, 1), rows(audio_time),
                                     rows(visual), kept(visual_mask, 2), rows(visual_time),
                                     rows(context), rows(context_mask))
        return logits.reshape(s, b, -1).transpose(0, 1), contrib.reshape(s, b, -1).transpose(0, 1)

    def _fuse(self, text: Tensor, text_mask: Tensor, text_time: Tensor,
              audio: Tensor, audio_mask: Tensor, audio_time: Tensor,
              visual: Tensor, visual_mask: Tensor, visual_time: Tensor,
              context: Tensor | None, context_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """MSDE, graphs and fusion on the (already top-layered) text nodes and the other modalities."""
        xs = {"text": text, "audio": audio, "visual": visual}
        masks = {"text": text_mask.to(torch.bool), "audio": audio_mask.to(torch.bool),
                 "visual": visual_mask.to(torch.bool)}
        times = {"text": text_time, "audio": audio_time, "visual": visual_time}
        present = torch.stack([masks[m].any(dim=1) for m in MODALITIES], dim=1) & self.active_mask.unsqueeze(0)
        if self.training and self.modality_dropout > 0:
            present = self._drop_modalities(present)
        nodes, gate = {}, []
        for i, m in enumerate(MODALITIES):
            mask = masks[m] & present[:, i : i + 1]
            masks[m] = mask
            x = torch.where(mask.unsqueeze(-1), xs[m], torch.zeros_like(xs[m]))
            t = torch.where(mask, times[m], torch.zeros_like(times[m]))
            times[m] = t
            if self.active[m]:
                nodes[m], s = self.msde[m](x, mask, t)
            else:  # absent in every row: MSDE would give zero nodes and a zero gate; skip its work (shaped after
                # x and t, so an exported graph keeps the branch's inputs)
                nodes[m] = torch.zeros_like(x[:, :, :1]).expand(-1, -1, self.cfg.hidden)
                s = torch.zeros_like(t[:, 0])
            gate.append(s)
        pooled: dict[tuple[str, str], Tensor] = {}
        for g, (a, b) in GRAPHS.items():
            _, _, pa, pb = self.graphs[g](nodes[a], masks[a], times[a], nodes[b], masks[b], times[b],
                                          impl=self.graph_impl)
            pooled[(g, a)], pooled[(g, b)] = pa, pb
        logits, contributions = self.fusion(pooled, present, torch.stack(gate, dim=1), context, context_mask)
        any_present = present.any(dim=1, keepdim=True)
        logits = torch.where(any_present, logits, torch.zeros_like(logits))
        return logits, contributions

    def forward_batch(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """:meth:`forward` on a :class:`~synctva_ros.core.batch.Batch` (context and text prefix used when present)."""
        return self(batch.text, batch.text_mask, batch.text_time, batch.audio, batch.audio_mask, batch.audio_time,
                    batch.visual, batch.visual_mask, batch.visual_time, batch.context, batch.context_mask,
                    batch.text_prefix, batch.text_prefix_mask)
