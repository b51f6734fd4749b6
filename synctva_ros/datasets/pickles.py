"""Readers for the pre-extracted feature pickles of the conversational emotion literature.

Layouts (the tuple that ``pickle.load`` returns, as the dataloaders of these projects unpack it;
every per-dialogue field is a dict keyed by the dialogue id ``vid``):

================== ======================================================================================
layout             fields
================== ======================================================================================
``mmgcn_iemocap``  MMGCN / M3Net ``IEMOCAP_features.pkl``: ids, speakers, labels, text, audio, visual,
                   sentences, train_vids, test_vids (9)
``mmgcn_meld``     MMGCN / M3Net ``MELD_features_raw1.pkl``: the same plus one unused trailing field (10)
``sdt_iemocap``    SDT ``iemocap_multimodal_features.pkl`` and GraphSmile ``iemocap_multi_features.pkl``:
                   ids, speakers, labels, text (RoBERTa layer 1), text2, text3, text4, audio, visual,
                   sentences, train_vids, test_vids (12)
``sdt_meld``       SDT ``meld_multimodal_features.pkl``: ids, speakers, labels, text, text2, text3, text4,
                   audio, visual, sentences, train_vids, test_vids, unused (13)
``graphsmile_meld`` GraphSmile ``meld_multi_features.pkl``: ids, speakers, labels, sentiments, text, text2,
                   text3, text4, audio, visual, sentences, train_vids, test_vids, unused (14)
================== ======================================================================================

Label indices in these files: IEMOCAP ``hap, sad, neu, ang, exc, fru`` = 0..5; MELD
``neutral, surprise, fear, sadness, joy, disgust, anger`` = 0..6 (note: not the project's
MELD order, labels are remapped by name). Speakers are ``"M"``/``"F"`` (IEMOCAP) or one-hot
vectors (MELD). Utterance-level vectors become 1-node modalities at time 0.5.

Security: pickles from the internet can run code when unpickled. :func:`safe_load_pickle`
uses a restricted :class:`pickle.Unpickler` whose ``find_class`` admits only numpy array /
scalar / dtype reconstruction, builtin containers and ``_codecs.encode`` (bytes in protocol-2
pickles); anything else (``os.system``, torch tensors, pandas objects, arbitrary classes)
raises :class:`UnsafePickleError`.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from typing import Any, Sequence

import numpy as np

from synctva_ros.datasets.iemocap import IEMOCAP_CLASSES
from synctva_ros.datasets.meld import MELD_CLASSES
from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "safe_load_pickle", "LAYOUTS", "PICKLE_LABELS",
           "read_feature_pickle", "detect_layout"]

log = logging.getLogger(__name__)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global that is not on the allow-list."""


_ALLOWED: frozenset[tuple[str, str]] = frozenset({
    # numpy arrays, scalars, dtypes (numpy 1 and 2 module paths)
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    # builtin containers / values
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "tuple"), ("builtins", "complex"), ("builtins", "bytearray"), ("builtins", "slice"),
    ("collections", "OrderedDict"),
    # the same builtins as Python 2 pickles name them (mapped by pickle's fix_imports)
    ("__builtin__", "list"), ("__builtin__", "dict"), ("__builtin__", "set"), ("__builtin__", "frozenset"),
    ("__builtin__", "tuple"), ("__builtin__", "complex"), ("__builtin__", "bytearray"), ("__builtin__", "slice"),
    # protocol-2 pickles of bytes
    ("_codecs", "encode"),
})


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals (see module docstring).

    Raises:
        UnsafePickleError: on any other global.
    """

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to unpickle global '{module}.{name}' (not a numpy array or "
                                "builtin container)")


def safe_load_pickle(source: str | os.PathLike[str] | bytes, encoding: str = "latin1") -> Any:
    """Unpickle a file (or bytes) with :class:`RestrictedUnpickler`.

    ``encoding="latin1"`` reads Python-2 pickles of numpy arrays (as the literature's loaders do).

    Raises:
        UnsafePickleError: a disallowed global; FileNotFoundError; pickle.UnpicklingError.
    """
    if isinstance(source, (bytes, bytearray)):
        return RestrictedUnpickler(io.BytesIO(source), encoding=encoding).load()
    with open(source, "rb") as fh:
        return RestrictedUnpickler(fh, encoding=encoding).load()


_T4 = ("text", "text2", "text3", "text4")
#: Field names of each layout, in pickle order ("_" = unused).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "mmgcn_iemocap": ("ids", "speakers", "labels", "text", "audio", "visual", "sentences", "train", "test"),
    "mmgcn_meld": ("ids", "speakers", "labels", "text", "audio", "visual", "sentences", "train", "test", "_"),
    "sdt_iemocap": ("ids", "speakers", "labels", *_T4, "audio", "visual", "sentences", "train", "test"),
    "sdt_meld": ("ids", "speakers", "labels", *_T4, "audio", "visual", "sentences", "train", "test", "_"),
    "graphsmile_meld": ("ids", "speakers", "labels", "sentiments", *_T4, "audio", "visual", "sentences",
                        "train", "test", "_"),
}
#: Aliases for file names people know.
LAYOUTS["graphsmile_iemocap"] = LAYOUTS["sdt_iemocap"]
LAYOUTS["m3net_iemocap"] = LAYOUTS["mmgcn_iemocap"]
LAYOUTS["m3net_meld"] = LAYOUTS["mmgcn_meld"]

#: Class name of each label index, per dataset, as stored in these pickles.
PICKLE_LABELS: dict[str, tuple[str, ...]] = {
    "iemocap": IEMOCAP_CLASSES,
    "meld": ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
}


def detect_layout(obj: Any, dataset: str) -> str:
    """Layout name for an unpickled tuple, from its length and ``dataset`` (``meld``/``iemocap``).

    Raises:
        ValueError: not a tuple/list, or no known layout has that length.
    """
    if not isinstance(obj, (tuple, list)):
        raise ValueError(f"expected a tuple of per-dialogue dicts, got {type(obj).__name__}")
    n = len(obj)
    candidates = {"iemocap": {9: "mmgcn_iemocap", 12: "sdt_iemocap"},
                  "meld": {10: "mmgcn_meld", 13: "sdt_meld", 14: "graphsmile_meld"}}[dataset]
    if n not in candidates:
        raise ValueError(f"no known {dataset} feature-pickle layout has {n} fields "
                         f"(known: { {k: len(LAYOUTS[v]) for k, v in candidates.items()} })")
    return candidates[n]


def _vec(v: Any) -> np.ndarray:
    return np.asarray(v, dtype=np.float32).reshape(-1)


def _one_node(v: Any) -> ModalityFeatures | None:
    x = _vec(v)
    if x.size == 0:
        return None
    return ModalityFeatures(x[None, :], np.array([0.5], np.float32))


def _speaker(v: Any) -> str:
    if isinstance(v, str):
        return v
    arr = np.asarray(v)
    if arr.ndim == 1 and arr.size > 1:
        return f"speaker{int(arr.argmax())}"
    return str(v)


def read_feature_pickle(path: str | os.PathLike[str] | bytes, dataset: str, split: str = "train",
                        layout: str | None = None, class_names: Sequence[str] | None = None,
                        text_field: str = "text") -> list[UtteranceFeatures]:
    """Read a literature feature pickle into :class:`UtteranceFeatures` (one per utterance).

    Args:
        path: the pickle file (or its bytes).
        dataset: ``"meld"`` or ``"iemocap"`` (decides label names and layout detection).
        split: ``"train"``, ``"test"`` or ``"all"`` (the pickle's own train/test dialogue lists).
        layout: a key of :data:`LAYOUTS`; default: detected from the tuple length.
        class_names: output class order for ``label`` (default: :data:`MELD_CLASSES` /
            :data:`IEMOCAP_CLASSES`); labels are mapped by name.
        text_field: which text feature to use (``text`` ... ``text4`` in the 4-layer layouts).

    Returns:
        Utterances in dialogue order (dialogues in the pickle's split-list order); each
        modality is a 1-node :class:`ModalityFeatures` (``x`` ``(1, F)``, ``t = [0.5]``),
        ``sentence`` is the text vector, ``meta`` holds ``speaker``, ``sentence_text``,
        ``utterance_id`` and ``sentiment`` when present.

    Raises:
        UnsafePickleError: disallowed content; ValueError: unknown dataset/layout/split/field,
        a label index outside the dataset's classes or a class missing from ``class_names``.
    """
    if dataset not in PICKLE_LABELS:
        raise ValueError(f"dataset must be one of {list(PICKLE_LABELS)}, got '{dataset}'")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got '{split}'")
    obj = safe_load_pickle(path)
    layout = layout or detect_layout(obj, dataset)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout '{layout}' (known: {sorted(LAYOUTS)})")
    names = LAYOUTS[layout]
    if not isinstance(obj, (tuple, list)) or len(obj) != len(names):
        raise ValueError(f"layout '{layout}' expects {len(names)} fields, the pickle has "
                         f"{len(obj) if isinstance(obj, (tuple, list)) else type(obj).__name__}")
    if text_field not in names:
        raise ValueError(f"layout '{layout}' has no field '{text_field}'")
    f = dict(zip(names, obj))
    vids = list(f["train"]) + list(f["test"]) if split == "all" else list(f[split])
    src_names = PICKLE_LABELS[dataset]
    out_names = list(class_names or (MELD_CLASSES if dataset == "meld" else IEMOCAP_CLASSES))
    out: list[UtteranceFeatures] = []
    for vid in vids:
        labels = list(f["labels"][vid])
        n = len(labels)
        texts, audios = f[text_field][vid], f["audio"][vid]
        visuals = f["visual"][vid] if f.get("visual") is not None and vid in f["visual"] else None
        ids = f["ids"].get(vid, list(range(n))) if isinstance(f["ids"], dict) else list(range(n))
        for i in range(n):
            li = int(labels[i])
            if not 0 <= li < len(src_names):
                raise ValueError(f"dialogue {vid!r} utterance {i}: label index {li} outside {src_names}")
            name = src_names[li]
            if name not in out_names:
                raise ValueError(f"class '{name}' is not in class_names {out_names}")
            meta: dict[str, Any] = {"speaker": _speaker(f["speakers"][vid][i]),
                                    "utterance_id": str(ids[i]) if i < len(ids) else str(i),
                                    "label_name": name}
            if "sentences" in f and vid in f["sentences"] and i < len(f["sentences"][vid]):
                meta["sentence_text"] = str(f["sentences"][vid][i])
            if "sentiments" in f and vid in f["sentiments"]:
                meta["sentiment"] = int(f["sentiments"][vid][i])
            text = _one_node(texts[i])
            out.append(UtteranceFeatures(
                text=text, audio=_one_node(audios[i]),
                visual=_one_node(visuals[i]) if visuals is not None else None,
                sentence=text.x[0].copy() if text is not None else None,
                label=out_names.index(name), dialogue_id=str(vid), utterance_index=i, meta=meta))
    return out
