from __future__ import annotations

import pytest

from synctva_ros.config import ConfigError
from synctva_ros.training.config import TrainingConfig, load_training_config


def test_yaml_profile_sections_and_overrides(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("training:\n  name: x\n  epochs: 4\n  dataset: iemocap\nprofile: demo\n"
                 "model:\n  hidden: 64\n  class_names: [hap, sad, neu, ang, exc, fru]\n")
    t, cfg = load_training_config(p, ["training.epochs=7", "model.heads=2", "training.modalities=text,audio"])
    assert t.name == "x" and t.epochs == 7 and t.dataset == "iemocap" and t.modalities == ["text", "audio"]
    assert cfg.model.hidden == 64 and cfg.model.heads == 2 and cfg.model.class_names[0] == "hap"
    assert cfg.features.text_encoder == "all-MiniLM-L6-v2"  # from the demo profile


@pytest.mark.parametrize("override", ["training.epochs=0", "training.nope=1", "training.dataset=mosi",
                                      "training.modalities=smell", "model.nope=3", "training.lr=-1"])
def test_bad_values_raise(override):
    with pytest.raises(ConfigError):
        load_training_config(None, [override])


def test_defaults_validate():
    assert TrainingConfig().validate().epochs > 0
