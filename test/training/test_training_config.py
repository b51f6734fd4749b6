from __future__ import annotations

from pathlib import Path

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


def test_selection_and_loss_keys_and_the_renamed_report_keys(caplog):
    t, _ = load_training_config(None, ["training.valid_fraction=0.2", "training.split_seed=3",
                                       "training.loss=logit_adjusted", "training.logit_tau=0.5",
                                       "training.select_metric=macro_f1", "training.valid_split=valid",
                                       "training.valid_limit=7"])
    assert (t.valid_fraction, t.split_seed, t.loss, t.logit_tau, t.select_metric) == (0.2, 3, "logit_adjusted",
                                                                                      0.5, "macro_f1")
    assert t.report_split == "valid" and t.report_limit == 7
    assert "now 'training.report_split'" in caplog.text
    d = TrainingConfig()
    assert (d.valid_fraction, d.report_split, d.loss, d.delta_dtype, d.max_checkpoint_mb) == (0.1, "dev", "", "float16",
                                                                                              30.0)


@pytest.mark.parametrize("override", ["training.valid_fraction=0", "training.valid_fraction=0.6",
                                      "training.loss=hinge", "training.select_metric=loss",
                                      "training.delta_dtype=int8", "training.max_checkpoint_mb=0",
                                      "training.encoder_lr=0", "training.logit_tau=-1"])
def test_bad_selection_values_raise(override):
    with pytest.raises(ConfigError):
        load_training_config(None, [override])


def test_loss_names_match_the_model_losses():
    """training.config keeps its own copy of the loss names (no torch import on config load): keep them equal."""
    from synctva_ros.model.losses import LOSSES
    from synctva_ros.training.config import _LOSSES

    assert _LOSSES == ("", *LOSSES)


@pytest.mark.parametrize("override", ["training.device=gpu", "training.device=cuda:x", "training.precision=fp8",
                                      "training.precision=fp16"])
def test_bad_device_or_precision_raises(override):
    """Issue 10: devices are cpu, cuda or cuda:N; fp16 needs CUDA (its loss scaler is CUDA's)."""
    with pytest.raises(ConfigError):
        load_training_config(None, [override])


def test_cuda_device_and_precisions_are_accepted_in_the_config():
    t, _ = load_training_config(None, ["training.device=cuda:1", "training.precision=fp16"])
    assert (t.device, t.precision) == ("cuda:1", "fp16")


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "config" / "train").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_training_recipe_loads_and_validates(path):
    t, cfg = load_training_config(path, [])
    assert t.validate() is t and t.name == path.stem and cfg.model.class_names
