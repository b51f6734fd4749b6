"""The feature-extractor interface.

An extractor turns one modality of an :class:`~synctva_ros.core.window.UtteranceWindow` into a
:class:`~synctva_ros.core.batch.ModalityFeatures` (graph nodes and their times), or ``None`` when the
window has no data for that modality. The containers live in :mod:`synctva_ros.core.batch`.
"""

from __future__ import annotations

import abc
from typing import Any

from synctva_ros.core.batch import ModalityFeatures

__all__ = ["FeatureExtractor"]


class FeatureExtractor(abc.ABC):
    """One modality's extractor.

    Subclasses set :attr:`modality` and :attr:`dim` and implement :meth:`identity`
    and :meth:`__call__`. The identity is written into checkpoint manifests; a
    checkpoint is refused when the configured extractor's identity differs.
    """

    modality: str = ""
    dim: int = 0

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """Stable identity: name, revision or weight-file hash, and every setting that changes outputs."""

    @abc.abstractmethod
    def __call__(self, window: Any) -> ModalityFeatures | None:
        """Features of one :class:`UtteranceWindow`, or ``None`` when it has no data for this modality."""
