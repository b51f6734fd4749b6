"""Fixtures for the streaming tests: the batch audio extractor (real openSMILE) and a small visual one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synctva_ros.features.audio import OpenSmileAudio
from synctva_ros.features.torchvision_compat import ensure_torchvision
from synctva_ros.features.visual import ResNetVisual

SR = 16000


@pytest.fixture(scope="session")
def audio_ext() -> OpenSmileAudio:
    return OpenSmileAudio("eGeMAPSv02", sample_rate=SR, max_nodes=32)


@pytest.fixture(scope="session")
def visual_ext(tmp_path_factory: pytest.TempPathFactory) -> ResNetVisual:
    """A ResNet-18 with random weights (seed 0), 2 fps, at most 4 frames, 64 px, no face crop."""
    ensure_torchvision()
    import torchvision  # deferred: only after ensure_torchvision() (CPU-torch shim), and only where used

    torch.manual_seed(0)
    path = Path(tmp_path_factory.mktemp("rn")) / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return ResNetVisual("resnet18", path, fps=2.0, max_frames=4, face_crop=False, image_size=64)
