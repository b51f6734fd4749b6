"""Training from the literature's feature pickles (``training.feature_pickle``; issue 10).

MMGCN / M3Net (``IEMOCAP_features.pkl``, ``MELD_features_raw1.pkl``), SDT and GraphSmile ship their
utterance-level text, audio and visual vectors as pickles (layouts:
:mod:`synctva_ros.datasets.pickles`, read only through its restricted unpickler). With
``training.feature_pickle`` set, ``synctva train`` reads its splits from such a file instead of the feature
caches: ``train_split`` and ``report_split`` name the pickle's own dialogue lists (``train``, ``test``,
or ``all``); the validation split is cut from the training dialogues as always. Each modality is one node
per utterance (``x`` ``(1, F)``), so the graph attention runs over one node per modality; the pooled
dialogue context (``model.context_turns``) uses the text vectors as sentence embeddings.

The checkpoint records the pickle (layout, field, sha256) as its extractors: it reproduces a published
table offline and cannot run in the node, whose extractors compute other features (the node refuses it
with the extractor mismatch it reports for any foreign checkpoint).
"""

from __future__ import annotations

from typing import Any

from synctva_ros.core.hashing import file_sha256
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.datasets.cache import CachedSplit
from synctva_ros.datasets.pickles import detect_layout, read_feature_pickle, safe_load_pickle

__all__ = ["load_pickle_split"]


def load_pickle_split(tcfg: Any, cfg: Any, split: str) -> CachedSplit:
    """One split of ``tcfg.feature_pickle`` as a :class:`~synctva_ros.datasets.cache.CachedSplit`.

    Args:
        tcfg: the run's :class:`~synctva_ros.training.config.TrainingConfig` (``feature_pickle``,
            ``pickle_layout`` ('' = detected from the tuple's length), ``pickle_text_field``, ``dataset``, ``limit``).
        cfg: the configuration (``model.class_names``: the labels are mapped by name onto them).
        split: the pickle's dialogue list: ``train``, ``test`` or ``all``.

    Returns:
        The split's utterances in dialogue order; ``dims`` from the vectors; ``header`` with ``extractors``
        ``{modality: {"kind": "feature_pickle", "layout", "field", "sha256", "dim"} or None}``.

    Raises:
        UnsafePickleError: disallowed content (code, arbitrary classes); ValueError: unknown layout, split or
        field, labels outside the dataset's classes, or ``model.text_top_layers`` > 0; FileNotFoundError: no
        such file.
    """
    if cfg.model.text_top_layers:
        raise ValueError("model.text_top_layers > 0 fine-tunes encoder layers on token states; a feature pickle "
                         "holds utterance vectors: set model.text_top_layers=0")
    path = tcfg.feature_pickle
    layout = tcfg.pickle_layout or detect_layout(safe_load_pickle(path), tcfg.dataset)
    names = list(cfg.model.class_names)
    items = read_feature_pickle(path, tcfg.dataset, split, layout=layout, class_names=names,
                                text_field=tcfg.pickle_text_field)
    dims: dict[str, int] = {}
    for m in MODALITIES:
        first = next((getattr(u, m) for u in items if getattr(u, m) is not None), None)
        dims[m] = 0 if first is None else int(first.x.shape[1])
    sha = file_sha256(path)
    fields = {"text": tcfg.pickle_text_field, "audio": "audio", "visual": "visual"}
    extractors = {m: ({"kind": "feature_pickle", "layout": layout, "field": fields[m], "sha256": sha, "dim": dims[m]}
                      if dims[m] else None) for m in MODALITIES}
    header = {"dataset": tcfg.dataset, "split": split, "class_names": names, "extractors": extractors,
              "source": {"feature_pickle": str(path), "layout": layout}}
    return CachedSplit(items, dims, names, header)
