from __future__ import annotations

import pytest

from synctva_ros.config import ModelConfig
from synctva_ros.model.affect import NRC_VAD, affect_of, expected_affect

IEMOCAP = ["hap", "sad", "neu", "ang", "exc", "fru"]


def test_every_dataset_class_has_values_in_range():
    for name in ModelConfig().class_names + IEMOCAP:
        v, a = affect_of(name)
        assert -1 <= v <= 1 and -1 <= a <= 1


def test_rescaling_and_expectation():
    assert affect_of("joy") == pytest.approx((2 * NRC_VAD["joy"][0] - 1, 2 * NRC_VAD["joy"][1] - 1))
    names = ModelConfig().class_names
    one_hot = [1.0 if n == "anger" else 0.0 for n in names]
    assert expected_affect(one_hot, names) == pytest.approx(affect_of("anger"))
    v, a = expected_affect([0.5, 0.5], ["joy", "sadness"])
    assert v == pytest.approx((affect_of("joy")[0] + affect_of("sadness")[0]) / 2)
    assert affect_of("joy")[0] > 0 > affect_of("sadness")[0]
    assert affect_of("anger")[1] > affect_of("neutral")[1]


def test_errors():
    with pytest.raises(KeyError):
        affect_of("boredom")
    with pytest.raises(ValueError):
        expected_affect([1.0], ["joy", "fear"])
    with pytest.raises(ValueError):
        expected_affect([-1.0, 2.0], ["joy", "fear"])
