"""ONNX export of the Sync-TVA fusion model and of the text and visual encoders.

Exporter: ``torch.onnx.export`` at opset :data:`DEFAULT_OPSET` (>= 18; at opset 16/17 the
graph exports but onnxruntime cannot load it, measured with the legacy exporter). Two exporters are supported:

* ``"torchscript"`` (default): the tracing exporter. Exports the fusion model in about a
  second; the model's forward has no data-dependent Python control flow (masks are
  applied with ``torch.where``), so tracing captures it for every input (checked by the
  parity tests, which vary batch size, node counts and missing modalities).
* ``"dynamo"``: ``torch.export``-based (needs ``onnxscript``); same results (within 1e-4, tested for the
  subsets graph), 25-30 s per fusion graph here against about a second.

Every dynamic axis is named: ``batch`` (B), ``n_text``, ``n_audio``, ``n_visual`` (node counts N_m), ``n_context`` (K),
``n_text_prefix`` (M, context word pieces), ``tokens`` (text-encoder sequence length) and ``frames`` (visual-encoder
images). Input names are :data:`~synctva_ros.backends.base.MODEL_INPUTS` (the context inputs only when the model has
``context_turns > 0``, the text prefix only when its fine-tuned text layers take the context's word pieces); outputs are
``logits`` ``(B, C)`` and ``contributions`` ``(B, 3)``.
The text encoder's graph (:func:`export_text_encoder`) takes :data:`TEXT_INPUTS` ``(B, T)`` int64 and
gives ``hidden`` ``(B, T, F)``: the states of one layer; the visual encoder's takes ``frames`` ``(N, 3, H, W)``
and gives ``embeddings`` ``(N, F)``.

The *subsets* variant (``subsets=True``, what the onnxruntime backend serves) is
``SyncTVA.forward_subsets``: one more input ``subsets`` ``(S, 3)`` bool (dynamic axis ``subsets``, the
modalities each subset keeps) before the model inputs, and outputs ``logits`` ``(B, S, C)`` and
``contributions`` ``(B, S, 3)``: the all-modalities and single-modality answers of a window in one run,
the text layers computed once.

The exported fusion graph is cached (:mod:`~synctva_ros.backends.engine_cache`) under a key of the
weights hash, the checkpoint manifest, the exporter, the opset and the torch version; a cached file is
reused only when its content matches the sha256 recorded when it was exported (else it is re-exported).
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.export import Dim

from synctva_ros.core.batch import Batch
from .base import MODEL_INPUTS
from .engine_cache import (CachedArtifact, cache_root, cached_build, graph_source_sha256, manifest_sha256,
                           state_dict_sha256)

__all__ = ["DEFAULT_OPSET", "EXPORTERS", "FUSION_OUTPUTS", "SUBSETS_INPUT", "TEXT_INPUTS", "fusion_input_names",
           "uses_text_prefix", "example_fusion_inputs", "batch_to_feeds", "pad_node_axes", "export_fusion",
           "export_text_encoder", "export_visual_encoder", "cached_fusion_onnx", "ExportError"]

log = logging.getLogger(__name__)

#: Lowest opset that exports *and* loads the graph-attention layers (opset 16/17 exports but does not load).
DEFAULT_OPSET = 18
EXPORTERS = ("torchscript", "dynamo")
FUSION_OUTPUTS = ("logits", "contributions")
#: Name of the subsets graph's first input, ``(S, 3)`` bool (see the module docstring).
SUBSETS_INPUT = "subsets"
_NODE_AXIS = {"text": "n_text", "audio": "n_audio", "visual": "n_visual", "context": "n_context",
              "text_prefix": "n_text_prefix"}


class ExportError(RuntimeError):
    """The model could not be exported (unsupported exporter/opset, or the exporter failed)."""


def fusion_input_names(model: torch.nn.Module) -> list[str]:
    """The fusion graph's input names: :data:`MODEL_INPUTS`, without context when ``context_turns == 0`` and
    without the text prefix unless the fine-tuned text layers take it (``text_top.spec["context_keys"]``)."""
    has_ctx = int(getattr(model, "cfg").context_turns) > 0
    return [n for n in MODEL_INPUTS if (has_ctx or not n.startswith("context"))
            and (uses_text_prefix(model) or not n.startswith("text_prefix"))]


def uses_text_prefix(model: torch.nn.Module) -> bool:
    """Whether the model's fine-tuned text layers attend over the dialogue context's word pieces."""
    top = getattr(model, "text_top", None)
    return bool(top is not None and top.spec.get("context_keys"))


def _axis(name: str) -> str:
    return _NODE_AXIS["text_prefix" if name.startswith("text_prefix") else name.split("_")[0]]


def example_fusion_inputs(model: torch.nn.Module, batch: int = 2, nodes: Mapping[str, int] | None = None,
                          seed: int = 0, absent: Mapping[str, list[int]] | None = None) -> tuple[torch.Tensor, ...]:
    """Random inputs for ``model.forward`` in :data:`MODEL_INPUTS` order.

    Args:
        model: a ``SyncTVA`` (its ``dims`` and ``cfg.context_turns`` give the widths).
        batch: B.
        nodes: N per modality (default text 6, audio 5, visual 3).
        seed: RNG seed.
        absent: ``{modality: [row, ...]}`` rows whose mask is all False (missing modality);
            other rows get a random number (>= 1) of real nodes followed by padding.

    Returns:
        The tensors (context ones only when the model uses context; the text prefix only when its text
        layers take it, after two ``None`` context slots when it has no context).
    """
    g = torch.Generator().manual_seed(seed)
    n = {"text": 6, "audio": 5, "visual": 3, **dict(nodes or {})}
    out: list[torch.Tensor] = []
    for m in ("text", "audio", "visual"):
        x = torch.randn(batch, n[m], model.dims[m], generator=g)
        k = torch.randint(1, n[m] + 1, (batch,), generator=g)
        mask = torch.arange(n[m]).unsqueeze(0) < k.unsqueeze(1)
        for row in (absent or {}).get(m, []):
            mask[row] = False
        t = torch.sort(torch.rand(batch, n[m], generator=g), dim=1).values
        out += [x * mask.unsqueeze(-1), mask, t * mask]
    turns = int(model.cfg.context_turns)
    if turns > 0:
        ctx = torch.randn(batch, turns, model.dims["text"], generator=g)
        cmask = torch.rand(batch, turns, generator=g) < 0.7
        out += [ctx * cmask.unsqueeze(-1), cmask]
    if uses_text_prefix(model):
        m = int(n.get("text_prefix", 7))
        prefix = torch.randn(batch, m, model.dims["text"], generator=g)
        pmask = torch.arange(m).unsqueeze(0) < torch.randint(0, m + 1, (batch,), generator=g).unsqueeze(1)
        if turns <= 0:  # forward's positional order: context slots first
            out += [None, None]  # type: ignore[list-item]
        out += [prefix * pmask.unsqueeze(-1), pmask]
    return tuple(out)


def batch_to_feeds(batch: Batch, names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{input name: numpy array}`` of a :class:`Batch` for the given graph input names.

    Raises:
        ValueError: the graph wants context inputs but the batch has none.
    """
    feeds: dict[str, np.ndarray] = {}
    for name in names:
        v = getattr(batch, name)
        if v is None and name.startswith("text_prefix"):  # no context yet (a session's first turn): 1 masked slot
            b, f = batch.text.shape[0], batch.text.shape[-1]
            v = torch.zeros(b, 1, f) if name == "text_prefix" else torch.zeros(b, 1, dtype=torch.bool)
        if v is None:
            raise ValueError(f"the exported model needs input '{name}' but the batch has none "
                             "(context_turns of the checkpoint and the pipeline differ)")
        arr = v.detach().to("cpu").numpy()
        feeds[name] = arr if arr.dtype == np.bool_ else arr.astype(np.float32, copy=False)
    return feeds


#: Node-axis groups: the tensors padded together (axis 1), for :func:`pad_node_axes`.
NODE_GROUPS = (("text", "text_mask", "text_time"), ("audio", "audio_mask", "audio_time"),
               ("visual", "visual_mask", "visual_time"), ("text_prefix", "text_prefix_mask"))


def _bucket(n: int) -> int:
    return max(4, 1 << max(0, int(n) - 1).bit_length())


def pad_node_axes(feeds: dict[str, np.ndarray], sizes: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """``feeds`` with every node axis (axis 1 of each group of :data:`NODE_GROUPS`: values, mask, time) zero/False-
    padded, to ``sizes[group head]`` (``"text"``, ``"audio"``, ``"visual"``, ``"text_prefix"``) when given, else to
    the next power of two, at least 4. Padded nodes are masked, so the network's outputs do not change (within 1e-6;
    Triton's dynamic batching and the CUDA graphs' fixed shapes rely on it). An axis already longer stays as it is.

    Shapes:
        each group's values ``(B, N, F)``, mask and time ``(B, N)`` -> ``(B, N', ...)`` with ``N'`` the target; names
        outside the groups (context, subsets) are returned as they are.
    """
    out = dict(feeds)
    for group in NODE_GROUPS:
        if group[0] not in out:
            continue
        n = out[group[0]].shape[1]
        extra = (int(sizes[group[0]]) if sizes is not None and group[0] in sizes else _bucket(n)) - n
        if extra <= 0:
            continue
        for k in group:
            a = out[k]
            pad = np.zeros((a.shape[0], extra, *a.shape[2:]), a.dtype)
            out[k] = np.concatenate([a, pad], axis=1)
    return out


def _dynamic_shapes(module: torch.nn.Module, names: list[str], axes: dict[str, dict[int, str]]) -> tuple:
    """``torch.export``'s ``dynamic_shapes``: one ``Dim`` per axis label, positional in ``names`` order and bound to
    ``module.forward``'s signature (the inputs of a ``*inputs`` parameter nested in one tuple)."""
    dims: dict[str, Any] = {}
    specs = tuple({a: dims.setdefault(lbl, Dim(lbl)) for a, lbl in axes.get(n, {}).items()} or None for n in names)
    kinds = [p.kind for p in inspect.signature(module.forward).parameters.values()]
    if inspect.Parameter.VAR_POSITIONAL not in kinds:
        return specs
    fixed = kinds.index(inspect.Parameter.VAR_POSITIONAL)
    return (*specs[:fixed], specs[fixed:])


def _export(module: torch.nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
            dynamic_axes: dict[str, dict[int, str]], opset: int, exporter: str) -> None:
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter '{exporter}' (known: {EXPORTERS})")
    if opset < 18:
        raise ExportError(f"opset {opset} < 18: the graph-attention layers do not load below opset 18")
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            if exporter == "dynamo":
                shapes = _dynamic_shapes(module, input_names, dynamic_axes)
                torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                                  dynamic_shapes=shapes, opset_version=opset, dynamo=True, external_data=False)
            else:
                torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                                  dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False,
                                  do_constant_folding=True)
    except Exception as exc:  # the exporters raise many unrelated types
        raise ExportError(f"ONNX export ({exporter}, opset {opset}) of {type(module).__name__} failed: {exc}") from exc
    log.info("exported %s to ONNX (%s, opset %d) in %.1f s", type(module).__name__, exporter, opset,
             time.perf_counter() - t0)


def export_fusion(model: torch.nn.Module, path: str | Path, opset: int = DEFAULT_OPSET,
                  exporter: str = "torchscript", subsets: bool = False) -> Path:
    """Export a ``SyncTVA`` to ONNX.

    Args:
        model: the fusion model (put in eval mode here; moved to CPU for export).
        path: output ``.onnx`` file.
        opset: ONNX opset (>= 18).
        exporter: ``"torchscript"`` or ``"dynamo"``.
        subsets: export ``SyncTVA.forward_subsets`` (input :data:`SUBSETS_INPUT` first) instead of ``forward``.

    Shapes:
        inputs as ``SyncTVA.forward`` with dynamic ``batch`` and node axes; outputs
        ``logits`` ``(B, C)``, ``contributions`` ``(B, 3)``; with ``subsets``, ``subsets`` ``(S, 3)`` bool
        first and outputs ``(B, S, C)``, ``(B, S, 3)``.

    Raises:
        ExportError: unsupported exporter/opset or the exporter failed.
    """
    path = Path(path)
    model = model.to("cpu").eval()
    names = fusion_input_names(model)
    # B=2 and N>1 everywhere so no axis is specialised to size 1 while tracing.
    args = example_fusion_inputs(model, batch=2, nodes={"text": 5, "audio": 4, "visual": 3, "text_prefix": 6})
    axes: dict[str, dict[int, str]] = {}
    for name in names:
        axes[name] = {0: "batch", 1: _axis(name)}
    axes["logits"] = {0: "batch"}
    axes["contributions"] = {0: "batch"}
    args = tuple(a for a in args if a is not None)
    if subsets:  # S=3 while tracing, so the axis stays dynamic
        args = (torch.tensor([[True, True, True], [True, False, False], [False, True, False]]), *args)
        axes[SUBSETS_INPUT] = {0: "subsets"}
        axes["logits"] = {0: "batch", 1: "subsets"}
        axes["contributions"] = {0: "batch", 1: "subsets"}
    inputs = [SUBSETS_INPUT, *names] if subsets else names
    _export(_NamedInputs(model, names, subsets).eval(), args, path, inputs, list(FUSION_OUTPUTS), axes, opset,
            exporter)
    return path


class _NamedInputs(torch.nn.Module):
    """``forward(*inputs)`` in ``names`` order -> ``model(**inputs)``: the graph's inputs are exactly ``names``
    (a model without context but with a text prefix would otherwise need ``None`` positional slots); with
    ``subsets``, ``forward(subsets, *inputs)`` -> ``model.forward_subsets(subsets, **inputs)``."""

    def __init__(self, model: torch.nn.Module, names: list[str], subsets: bool = False) -> None:
        super().__init__()
        self.model, self.names, self.subsets = model, list(names), subsets

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.subsets:
            return self.model.forward_subsets(inputs[0], **dict(zip(self.names, inputs[1:])))
        return self.model(**dict(zip(self.names, inputs)))


#: Input names a text-encoder graph may take, in this order (``token_type_ids`` only for tokenizers that produce it).
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _EncoderStates(torch.nn.Module):
    """``(input_ids, attention_mask[, token_type_ids]) -> states of layer ``layer`` (-1: the last)`` of a Hugging
    Face encoder (named arguments, so both exporters name the graph's inputs after them)."""

    def __init__(self, hf_model: torch.nn.Module, layer: int) -> None:
        super().__init__()
        self.hf, self.layer = hf_model, int(layer)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        kw = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        res = self.hf(**kw, output_hidden_states=self.layer >= 0)
        return res.last_hidden_state if self.layer < 0 else res.hidden_states[self.layer]


def export_text_encoder(hf_model: torch.nn.Module, path: str | Path,
                        input_names: list[str] | tuple[str, ...] = TEXT_INPUTS[:2], layer: int = -1,
                        opset: int = DEFAULT_OPSET, exporter: str = "torchscript") -> Path:
    """Export a Hugging Face encoder (``AutoModel``: BERT, RoBERTa, MiniLM, ...) to ONNX: the states of one of its
    layers. The model given is neither moved nor changed (a CPU copy is traced when it lives elsewhere; eval mode
    is set). The text extractor's cached graph is this export (:mod:`~synctva_ros.backends.text_encoder`).

    Args:
        hf_model: the encoder.
        path: output ``.onnx`` file.
        input_names: ``input_ids``, ``attention_mask`` and optionally ``token_type_ids``, in that order
            (:data:`TEXT_INPUTS`).
        layer: ``-1`` for ``last_hidden_state``, else ``hidden_states[layer]`` (0: the embeddings' output).
        opset: ONNX opset (>= 18).
        exporter: ``"torchscript"`` or ``"dynamo"``.

    Shapes:
        each input ``(B, T)`` int64 -> ``hidden`` ``(B, T, F)`` float32; ``B`` and ``T`` dynamic (``batch``,
        ``tokens``).

    Raises:
        ExportError: ``input_names`` are not a prefix of :data:`TEXT_INPUTS` of length 2 or 3, an unsupported
            exporter/opset, or the exporter failed.
    """
    names = list(input_names)
    if names not in (list(TEXT_INPUTS[:2]), list(TEXT_INPUTS)):
        raise ExportError(f"text-encoder inputs {names}: expected {list(TEXT_INPUTS[:2])} or {list(TEXT_INPUTS)}")
    on_cpu = all(p.device.type == "cpu" for p in hf_model.parameters())
    model = (hf_model if on_cpu else copy.deepcopy(hf_model).to("cpu")).eval()
    vocab = int(getattr(model.config, "vocab_size", 100))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, max(vocab, 6), (2, 7), generator=g)
    att = torch.ones(2, 7, dtype=torch.long)
    att[1, 5:] = 0
    args = [ids, att] + ([torch.tensor([[0, 0, 0, 1, 1, 1, 1]] * 2)] if "token_type_ids" in names else [])
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        _export(_EncoderStates(model, layer).eval(), tuple(args), Path(path), names, ["hidden"], axes, opset,
                exporter)
    return Path(path)


def export_visual_encoder(trunk: torch.nn.Module, path: str | Path, image_size: int = 224,
                          opset: int = DEFAULT_OPSET, exporter: str = "torchscript") -> Path:
    """Export a ResNet trunk (``fc`` replaced by identity) to ONNX. The module given is neither moved nor changed
    (a CPU copy is traced when it lives elsewhere; eval mode is set). The visual extractor's cached graph is this
    export (:mod:`~synctva_ros.backends.visual_encoder`).

    Args:
        trunk: the ResNet up to global pooling.
        path: output ``.onnx`` file.
        image_size: input side in pixels (H = W).
        opset: ONNX opset (>= 18).
        exporter: ``"torchscript"`` or ``"dynamo"``.

    Shapes:
        ``frames`` ``(N, 3, H, W)`` float32 (ImageNet-normalised) -> ``embeddings`` ``(N, F)``;
        ``N`` dynamic (``frames``), ``H = W = image_size`` fixed.

    Raises:
        ExportError: unsupported exporter/opset, or the exporter failed.
    """
    path = Path(path)
    on_cpu = all(p.device.type == "cpu" for p in trunk.parameters())
    trunk = (trunk if on_cpu else copy.deepcopy(trunk).to("cpu")).eval()
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    axes = {"frames": {0: "frames"}, "embeddings": {0: "frames"}}
    _export(trunk, (x,), path, ["frames"], ["embeddings"], axes, opset, exporter)
    return path


def _parts(kind: str, module: torch.nn.Module, opset: int, exporter: str, **extra: Any) -> dict[str, Any]:
    # An inactive branch's MSDE weights are not in the checkpoint (random at every load) and cannot change the
    # outputs (the branch is masked): left out of the key, so the same checkpoint finds its export again.
    inactive = tuple(f"msde.{m}." for m, on in getattr(module, "active", {}).items() if not on)
    return {"kind": kind, "weights_sha256": state_dict_sha256(module, inactive), "opset": opset, "exporter": exporter,
            "torch": torch.__version__, "code_sha256": graph_source_sha256(), **extra}


def cached_fusion_onnx(model: torch.nn.Module, manifest: Mapping[str, Any] | None = None,
                       cache_dir: str | Path | None = None, opset: int = DEFAULT_OPSET,
                       exporter: str = "torchscript", subsets: bool = False) -> Path:
    """Path of the fusion model's ONNX file in the cache, exporting it when the key is new.

    Key: weights hash (without the MSDE weights of inactive branches: they are not in the checkpoint, random at
    every load, and masked) + manifest hash (without ``created``) + the graph code's hash
    (:func:`~synctva_ros.backends.engine_cache.graph_source_sha256`) + exporter + opset + torch version (+ ``subsets``
    for the subsets graph, ``fusion_subsets-<key>.onnx``).

    Raises:
        ExportError: export failed; OSError: the cache directory is not writable.
    """
    extra = {"subsets": True} if subsets else {}
    parts = _parts("fusion", model, opset, exporter, manifest_sha256=manifest_sha256(manifest),
                   inputs=fusion_input_names(model), **extra)
    art = CachedArtifact(cache_root(cache_dir), "onnx", "fusion_subsets" if subsets else "fusion", "onnx", parts)
    path, _ = cached_build(art, lambda p: export_fusion(model, p, opset, exporter, subsets))
    return path
