"""Frames with several faces (``synctva_ros.evaluation.two_faces``): placement, mirroring, ownership, grids."""

from __future__ import annotations

import numpy as np
import pytest

from synctva_ros.evaluation.two_faces import (POSITIONS, SIZES, Placement, compose, grid, owner,
                                              speaker_listener)


def test_compose_scales_and_places_each_image_and_cuts_at_the_border() -> None:
    red = np.zeros((50, 100, 3), np.uint8)
    red[..., 0] = 255
    green = np.zeros((40, 40, 3), np.uint8)
    green[..., 1] = 255
    f = compose([red, green], [Placement(100, 100, 60), Placement(630, 470, 20)], size=(640, 480))
    assert f.shape == (480, 640, 3) and f.dtype == np.uint8
    ys, xs = np.nonzero(f[..., 0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (70, 129, 85, 114)  # 60x30 around (100, 100)
    ys, xs = np.nonzero(f[..., 1])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (620, 639, 460, 479)  # 20x20, cut at the corner
    with pytest.raises(ValueError):
        compose([red], [])


def test_conditions_mirroring_and_owner() -> None:
    for size in SIZES:
        for pos in POSITIONS:
            s, li = speaker_listener(size, pos)
            ms, ml = speaker_listener(size, pos, mirror=True)
            assert (s.side, li.side) == SIZES[size] and ms.cx == 640 - s.cx and ml.cx == 640 - li.cx
            for p in (s, li, ms, ml):  # every face is in the frame
                assert 0 <= p.cx - p.side / 2 and p.cx + p.side / 2 <= 640
            assert abs(s.cx - li.cx) >= (s.side + li.side) / 2  # side by side, never overlapping
    s, li = speaker_listener("equal", "speaker off-centre", dx=5, dy=-10)
    assert (s.cx, s.cy, li.cx) == (105, 230, 365)
    assert owner([s.cx - 20, s.cy - 20, s.cx + 20, s.cy + 20], [s, li]) == 0
    assert owner([li.cx - 5, 0, li.cx + 5, 10], [s, li]) == 1  # outside both: the nearest
    assert owner([0, 0, 1, 1], []) == -1


def test_grid() -> None:
    assert [len(grid(n)) for n in (1, 2, 4)] == [1, 2, 4]
    assert grid(1)[0] == Placement(320, 240, 150)
    with pytest.raises(ValueError):
        grid(3)
