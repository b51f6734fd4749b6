"""The modality names, in the one order used everywhere (masks, contributions, EmotionState arrays).

The lowest layer of the package: every other module may import it.
"""

from __future__ import annotations

__all__ = ["MODALITIES"]

#: Modality order used everywhere (masks, contributions, EmotionState arrays).
MODALITIES: tuple[str, str, str] = ("text", "audio", "visual")
