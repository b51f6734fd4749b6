"""IoU tracking: ids persist across frames, survive short misses, new faces get new ids."""

from __future__ import annotations

import pytest

from synctva_ros.features.faces.track import IouTracker, iou


def test_iou() -> None:
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [10, 10, 20, 20]) == 0.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)


def test_ids_persist_and_move_with_the_face() -> None:
    t = IouTracker()
    a, b = [100, 100, 200, 200], [400, 100, 500, 200]
    ids = t.update([a, b])
    assert ids == [1, 2]
    for dx in range(5, 40, 5):  # both faces drift right; order of boxes swapped
        ids = t.update([[b[0] + dx, 100, b[2] + dx, 200], [a[0] + dx, 100, a[2] + dx, 200]])
        assert ids == [2, 1]


def test_short_miss_keeps_id_long_miss_drops_it() -> None:
    t = IouTracker(max_missed=2)
    box = [0, 0, 50, 50]
    assert t.update([box]) == [1]
    assert t.update([]) == [] and t.update([]) == []
    assert t.update([box]) == [1]
    for _ in range(3):
        t.update([])
    assert t.update([box]) == [2]


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        IouTracker(iou_threshold=0)
