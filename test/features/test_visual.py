from __future__ import annotations

import numpy as np
import pytest
import torch

from synctva_ros.features.torchvision_compat import ensure_torchvision
from synctva_ros.features.visual import (FaceCropper, ResNetVisual, VisualWeightsUnavailable, sample_frames,
                                         visual_weights_available)
from synctva_ros.core.window import TimedFrame, UtteranceWindow


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory):
    ensure_torchvision()
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("resnet") / "resnet18_random.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def astronaut():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut())


def test_no_weights_means_unavailable(tmp_path):
    assert not visual_weights_available("")
    assert not visual_weights_available(tmp_path / "missing.pth")
    with pytest.raises(VisualWeightsUnavailable, match="visual branch stays off"):
        ResNetVisual("resnet50", weights="")


def test_sample_frames():
    stamps = [i / 30 for i in range(90)]  # 3 s at 30 fps
    idx = sample_frames(stamps, 0.0, 3.0, fps=2.0, max_frames=8)
    assert len(idx) == 6
    np.testing.assert_allclose([stamps[i] for i in idx], [0.25, 0.75, 1.25, 1.75, 2.25, 2.75], atol=1 / 60)
    assert len(sample_frames(stamps, 0.0, 3.0, fps=10.0, max_frames=4)) == 4
    assert sample_frames([], 0.0, 1.0, 2.0, 8) == []
    assert sample_frames([0.5], 0.0, 3.0, 2.0, 8) == [0]


def test_face_crop_on_astronaut(astronaut):
    crop = FaceCropper(margin=0.25)
    box = crop.box(astronaut)
    assert box is not None
    x0, y0, x1, y1 = box
    # Eileen Collins' face is in the upper middle of the 512x512 image
    assert 100 < (x0 + x1) / 2 < 300 and 30 < (y0 + y1) / 2 < 200
    assert (x1 - x0) * (y1 - y0) < 0.3 * astronaut.shape[0] * astronaut.shape[1]
    img, found = crop(astronaut)
    assert found and img.shape == (y1 - y0, x1 - x0, 3)
    blank, found = crop(np.full((200, 200, 3), 127, np.uint8))
    assert not found and blank.shape == (200, 200, 3)


def test_resnet18_nodes_and_identity(resnet18_weights, astronaut):
    vis = ResNetVisual("resnet18", resnet18_weights, fps=2.0, max_frames=3, face_crop=True, image_size=64)
    assert vis.dim == 512
    frames = [TimedFrame(1.0 + i * 0.1, astronaut) for i in range(20)]
    f = vis(UtteranceWindow(1.0, 3.0, frames=frames))
    assert f.x.shape == (3, 512) and f.x.dtype == np.float32 and np.all(np.isfinite(f.x))
    assert np.all((f.t >= 0) & (f.t <= 1)) and np.all(np.diff(f.t) > 0)
    assert vis(UtteranceWindow(1.0, 3.0)) is None
    ident = vis.identity()
    assert ident["encoder"] == "resnet18" and len(ident["weights_sha256"]) == 64 and ident["face_crop"]
    # face crop changes the input, so the embedding
    nocrop = ResNetVisual("resnet18", resnet18_weights, max_frames=1, face_crop=False, image_size=64)
    assert not np.allclose(nocrop.encode_images([astronaut]), vis.encode_images([astronaut]))


def test_wrong_architecture_weights_raise(resnet18_weights):
    with pytest.raises(RuntimeError):
        ResNetVisual("resnet34", resnet18_weights)
    with pytest.raises(ValueError):
        ResNetVisual("vgg16", resnet18_weights)
