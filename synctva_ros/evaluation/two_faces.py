"""Camera frames with several faces: labelled photographs placed in a black frame, for measuring what the face
stage does with more than one person in view (the speaker-face policy, the per-face expression output, the
cost per additional face).

The photographs of ``../shared/data/faces`` are tight face crops of about 350x350 (the detected face box
fills most of the image), so a photograph scaled to ``side`` pixels shows a face of about ``side`` pixels.
:func:`compose` pastes each at its :class:`Placement`; :func:`speaker_listener` gives the placements of the
speaker and a listener for a size condition (:data:`SIZES`) and a position condition (:data:`POSITIONS`),
optionally mirrored and jittered; :func:`owner` says whose placement a detected face box lies in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["FRAME_SIZE", "SIZES", "POSITIONS", "Placement", "compose", "speaker_listener", "owner", "grid"]

#: Camera frame ``(width, height)`` in pixels.
FRAME_SIZE = (640, 480)
#: Size conditions: face side in pixels, ``(speaker, listener)``.
SIZES = {"speaker larger": (200, 110), "equal": (150, 150), "listener larger": (110, 200)}
#: Position conditions: horizontal offset of the face centre from the frame centre, pixels, ``(speaker,
#: listener)``: the speaker in the middle and the listener at the side; both equally far from the middle on
#: either side; the speaker at the edge and the listener near the middle.
POSITIONS = {"speaker central": (0, 215), "symmetric": (-140, 140), "speaker off-centre": (-220, 40)}


@dataclass(frozen=True)
class Placement:
    """Where a photograph goes: centre ``(cx, cy)`` and longer side ``side``, pixels."""

    cx: float
    cy: float
    side: float

    def contains(self, x: float, y: float) -> bool:
        """Whether ``(x, y)`` lies inside the placed square."""
        h = self.side / 2.0
        return abs(x - self.cx) <= h and abs(y - self.cy) <= h


def compose(images: Sequence[np.ndarray], placements: Sequence[Placement],
            size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A black ``size = (width, height)`` frame with each image scaled (area / linear interpolation) so that
    its longer side is ``placement.side`` and centred at ``(cx, cy)``; parts outside the frame are cut, later
    images cover earlier ones.

    Shapes:
        each image ``(h, w, 3)`` uint8 RGB -> ``(height, width, 3)`` uint8.

    Raises:
        ValueError: a different number of images and placements, or a side < 1.
    """
    # deferred: OpenCV only to scale the photographs
    import cv2

    if len(images) != len(placements):
        raise ValueError(f"{len(images)} images for {len(placements)} placements")
    w, h = int(size[0]), int(size[1])
    out = np.zeros((h, w, 3), np.uint8)
    for img, p in zip(images, placements):
        if p.side < 1:
            raise ValueError(f"placement side must be >= 1 px, got {p.side}")
        f = p.side / max(img.shape[:2])
        iw, ih = max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f))
        small = cv2.resize(img[..., :3], (iw, ih), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        x0, y0 = round(p.cx - iw / 2), round(p.cy - ih / 2)
        fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + iw, w), min(y0 + ih, h)
        if fx1 > fx0 and fy1 > fy0:
            out[fy0:fy1, fx0:fx1] = small[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    return out


def speaker_listener(size: str, position: str, mirror: bool = False, dx: float = 0.0, dy: float = 0.0,
                     frame: tuple[int, int] = FRAME_SIZE) -> tuple[Placement, Placement]:
    """The speaker's and the listener's placements for a condition of :data:`SIZES` and :data:`POSITIONS`.

    Args:
        size, position: condition names.
        mirror: swap left and right (the speaker on the right).
        dx, dy: shift of both faces, pixels (jitter), applied after mirroring.
        frame: ``(width, height)``.

    Raises:
        KeyError: an unknown condition.
    """
    (s_side, l_side), (s_off, l_off) = SIZES[size], POSITIONS[position]
    sign = -1.0 if mirror else 1.0
    cx, cy = frame[0] / 2.0 + dx, frame[1] / 2.0 + dy
    return Placement(cx + sign * s_off, cy, s_side), Placement(cx + sign * l_off, cy, l_side)


def owner(box: Sequence[float], placements: Sequence[Placement]) -> int:
    """Index of the placement the box's centre lies in (the nearest centre when several or none), -1 for no
    placements."""
    if not placements:
        return -1
    x, y = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    inside = [i for i, p in enumerate(placements) if p.contains(x, y)]
    cands = inside or range(len(placements))
    return min(cands, key=lambda i: np.hypot(x - placements[i].cx, y - placements[i].cy))


def grid(n: int, side: float = 150.0, frame: tuple[int, int] = FRAME_SIZE) -> list[Placement]:
    """``n`` (1, 2 or 4) equal faces: one in the middle, two side by side, or a 2x2 grid.

    Raises:
        ValueError: another ``n``.
    """
    w, h = frame
    spots = {1: [(w / 2, h / 2)], 2: [(w / 4, h / 2), (3 * w / 4, h / 2)],
             4: [(w / 4, h / 4), (3 * w / 4, h / 4), (w / 4, 3 * h / 4), (3 * w / 4, 3 * h / 4)]}
    if n not in spots:
        raise ValueError(f"n must be 1, 2 or 4, got {n}")
    return [Placement(x, y, side) for x, y in spots[n]]
