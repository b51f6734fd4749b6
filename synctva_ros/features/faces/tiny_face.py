"""face-api.js' Tiny Face Detector (a Tiny-YOLOv2 with depthwise-separable convolutions, one class) as a torch
module, plus its box decoding. Source: ``@vladmandic/face-api`` 1.7.15 ``src/tinyFaceDetector`` and
``src/tinyYolov2/TinyYolov2Base.ts`` (``runMobilenet``, ``extractBoxes``), weights
``model/tiny_face_detector_model.bin``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .expression import tf_same_pad
from .mtcnn import nms

__all__ = ["TinyFaceDetectorNet", "TINY_ANCHORS", "decode_tiny"]

#: Anchor (width, height) in grid cells (``tinyFaceDetector/const.ts`` ``BOX_ANCHORS``).
TINY_ANCHORS = np.array([[1.603231, 2.094468], [6.041143, 7.080126], [2.882459, 3.518061],
                         [4.266906, 5.178857], [9.041765, 10.66308]], np.float32)


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class _Sep(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _leaky(self.pointwise(self.depthwise(x)))


class TinyFaceDetectorNet(nn.Module):
    """The detector network.

    Shapes:
        ``(B, 3, S, S)`` float32 RGB in [0, 255], ``S`` a multiple of 32 -> ``(B, 25, G, G)`` raw outputs,
        ``G = S / 32`` cells, channel ``5 * anchor + (tx, ty, tw, th, score)``.
    """

    MEAN_RGB = (117.001, 114.697, 97.404)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(self.MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.conv0 = nn.Conv2d(3, 16, 3)
        self.convs = nn.ModuleList([_Sep(a, b) for a, b in ((16, 32), (32, 64), (64, 128), (128, 256), (256, 512))])
        self.conv8 = nn.Conv2d(512, 25, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _leaky(self.conv0((x - self.mean) / 255.0))
        x = F.max_pool2d(tf_same_pad(x, 2, 2, float("-inf")), 2, 2)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            s = 2 if i < 4 else 1
            x = F.max_pool2d(tf_same_pad(x, 2, s, float("-inf")), 2, s)
        return self.conv8(x)


def decode_tiny(out: np.ndarray, scale: float, score_threshold: float = 0.5,
                iou_threshold: float = 0.4) -> np.ndarray:
    """Boxes from one image's raw output (``extractBoxes`` + NMS of ``TinyYolov2Base.detect``).

    Args:
        out: ``(25, G, G)`` raw output.
        scale: input pixels per network pixel (the padded square side / network input side).
        score_threshold: minimum sigmoid score (face-api's default 0.5).
        iou_threshold: NMS IoU (face-api's 0.4).

    Returns:
        ``(N, 5)`` float32 x1, y1, x2, y2 (pixels of the input image), score; best first.
    """
    g = out.shape[-1]
    o = out.reshape(5, 5, g, g)
    sig = 1.0 / (1.0 + np.exp(-o[:, :2]))
    score = 1.0 / (1.0 + np.exp(-o[:, 4]))
    a, r, c = np.nonzero(score > score_threshold)
    if not len(a):
        return np.zeros((0, 5), np.float32)
    cx = (c + sig[a, 0, r, c]) / g
    cy = (r + sig[a, 1, r, c]) / g
    w = np.exp(o[a, 2, r, c]) * TINY_ANCHORS[a, 0] / g
    h = np.exp(o[a, 3, r, c]) * TINY_ANCHORS[a, 1] / g
    side = g * 32 * scale
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) * side
    s = score[a, r, c]
    k = nms(boxes, s, iou_threshold)
    return np.concatenate([boxes[k], s[k, None]], 1).astype(np.float32)
