"""MTCNN face detector (Zhang, Zhang, Li and Qiao, "Joint Face Detection and Alignment Using Multitask
Cascaded Convolutional Networks", IEEE SPL 2016) with the weights of ``facenet-pytorch`` 2.6.0.

The three networks mirror ``facenet_pytorch/models/mtcnn.py`` (same parameter names, so its state dicts
``pnet.pt``/``rnet.pt``/``onet.pt`` load as they are); the cascade follows its ``detect_face`` (scale
pyramid with factor 0.709, thresholds 0.6/0.7/0.7, NMS 0.5 per scale, 0.7 across, 0.7 "Min" at the end),
with OpenCV's bilinear resampling (facenet-pytorch uses area resampling: 40x slower here) and a numpy NMS
instead of ``torchvision.ops.batched_nms`` (unusable next to the CPU torch here). The networks run through
:mod:`.runtime` (torch or onnxruntime; :func:`as_runners`). :func:`onet_refine` runs the last stage alone on
given boxes: how a tracked face is carried from one frame to the next without the pyramid
(:mod:`.schedule`).
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from .runtime import NetRunner, TorchRunner

__all__ = ["PNet", "RNet", "ONet", "nms", "as_runners", "mtcnn_detect", "onet_refine"]


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12x12 receptive field, stride 2.

    Shapes:
        ``(B, 3, H, W)`` in [-1, 1] -> (box offsets ``(B, 4, H', W')``, face probability ``(B, 2, H', W')``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), 1)


class RNet(nn.Module):
    """Refinement net on 24x24 crops.

    Shapes:
        ``(N, 3, 24, 24)`` -> (offsets ``(N, 4)``, probability ``(N, 2)``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()  # Caffe's flattening order
        x = self.prelu4(self.dense4(x.flatten(1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), 1)


class ONet(nn.Module):
    """Output net on 48x48 crops (box, five landmarks).

    Shapes:
        ``(N, 3, 48, 48)`` -> (offsets ``(N, 4)``, landmarks ``(N, 10)`` (5 x then 5 y, relative to the box),
        probability ``(N, 2)``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.flatten(1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), 1)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` x1, y1, x2, y2 in pixels.
        scores: ``(N,)``.
        threshold: overlap above which a lower-scored box is dropped.
        method: ``"union"`` (IoU) or ``"min"`` (intersection over the smaller area).

    Returns:
        Indices kept, best first.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        den = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(den, 1e-9) <= threshold]
    return np.asarray(keep, np.int64)


def _square(b: np.ndarray) -> np.ndarray:
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    out = b.copy()
    out[:, 0] = b[:, 0] + 0.5 * (w - side)
    out[:, 1] = b[:, 1] + 0.5 * (h - side)
    out[:, 2], out[:, 3] = out[:, 0] + side, out[:, 1] + side
    return out


def _to_net(img: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` or ``(N, H, W, 3)`` -> float32 ``(N, 3, H, W)`` scaled to [-1, 1] as MTCNN was trained.

    The result is a transposed view (channels-last memory): torch's convolutions run faster on it than on a
    contiguous copy; onnxruntime's runner makes the contiguous copy it needs.
    """
    x = img[None] if img.ndim == 3 else img
    return ((x.astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2)


def _crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    out = []
    for x1, y1, x2, y2 in boxes[:, :4].astype(int):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        patch = img[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
        out.append(cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR))
    return _to_net(np.stack(out))


def as_runners(nets: Sequence[Any]) -> tuple[NetRunner, NetRunner, NetRunner]:
    """(P, R, O) runners: torch modules are wrapped in :class:`~.runtime.TorchRunner`, runners kept."""
    return tuple(TorchRunner(n) if isinstance(n, nn.Module) else n for n in nets)  # type: ignore[return-value]


def _onet_stage(img: np.ndarray, b: np.ndarray, onet: NetRunner,
                threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """O-net on square boxes ``b`` ``(N, >=4)``: which rows are kept ``(N,)`` bool, the kept boxes ``(K, 5)``
    (regressed, with O-net's probability) and their landmarks ``(K, 5, 2)``, before the final NMS."""
    reg, lm, prob = onet(_crops(img, np.trunc(b), 48))
    keep = prob[:, 1] > threshold
    b, reg, lm = b[keep, :5].astype(np.float64), reg[keep], lm[keep]
    b[:, 4] = prob[keep, 1]
    bw, bh = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
    pts = np.stack([bw[:, None] * lm[:, :5] + b[:, :1] - 1, bh[:, None] * lm[:, 5:] + b[:, 1:2] - 1], 2)
    b[:, :4] += reg * np.stack([bw, bh, bw, bh], 1)
    return keep, b, pts


def mtcnn_detect(image: np.ndarray, nets: Sequence[Any], min_face: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, skip_levels: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The three-stage cascade on one RGB image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        nets: (P, R, O): loaded nets in eval mode, or :class:`~.runtime.NetRunner` s of them.
        min_face: smallest face side searched, pixels (>= 12).
        thresholds: face-probability thresholds of the three stages.
        factor: scale step of the image pyramid (0 < factor < 1; larger: more scales, slower, finer).
        skip_levels: the pyramid's first (largest, costliest) levels not run: faces smaller than
            ``min_face / factor ** skip_levels`` are not searched, the other levels are exactly those of the
            full pyramid.

    Returns:
        ``(boxes (N, 5) float32: x1, y1, x2, y2, probability; landmarks (N, 5, 2) float32 pixels)``.
    """
    pnet, rnet, onet = as_runners(nets)
    img = np.ascontiguousarray(image[..., :3])
    h, w = img.shape[:2]
    empty = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
    scale, minl, cands, level = 12.0 / min_face, min(h, w) * 12.0 / min_face, [], 0
    while minl >= 12:
        if level < skip_levels:
            scale, minl, level = scale * factor, minl * factor, level + 1
            continue
        level += 1
        small = cv2.resize(img, (int(w * scale + 1), int(h * scale + 1)), interpolation=cv2.INTER_LINEAR)
        reg, prob = pnet(_to_net(small))
        p, r = prob[0, 1], reg[0]
        ys, xs = np.nonzero(p >= thresholds[0])
        if len(ys):
            q1 = np.floor((2 * np.stack([xs, ys], 1) + 1) / scale)
            q2 = np.floor((2 * np.stack([xs, ys], 1) + 12) / scale)
            b = np.concatenate([q1, q2, p[ys, xs, None], r[:, ys, xs].T], 1)
            cands.append(b[nms(b[:, :4], b[:, 4], 0.5)])
        scale, minl = scale * factor, minl * factor
    if not cands:
        return empty
    b = np.concatenate(cands)
    b = b[nms(b[:, :4], b[:, 4], 0.7)]
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    b = _square(np.stack([b[:, 0] + b[:, 5] * bw, b[:, 1] + b[:, 6] * bh, b[:, 2] + b[:, 7] * bw,
                          b[:, 3] + b[:, 8] * bh, b[:, 4]], 1))
    reg, prob = rnet(_crops(img, np.trunc(b), 24))
    keep = prob[:, 1] > thresholds[1]
    b, reg = b[keep], reg[keep]
    b[:, 4] = prob[keep, 1]
    if not len(b):
        return empty
    k = nms(b[:, :4], b[:, 4], 0.7)
    b, reg = b[k], reg[k]
    bw, bh = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
    b[:, :4] += reg * np.stack([bw, bh, bw, bh], 1)
    _, b, pts = _onet_stage(img, _square(b), onet, thresholds[2])
    if not len(b):
        return empty
    k = nms(b[:, :4], b[:, 4], 0.7, "min")
    return b[k].astype(np.float32), pts[k].astype(np.float32)


def onet_refine(image: np.ndarray, boxes: np.ndarray, onet: Any,
                threshold: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """MTCNN's last stage alone on given boxes: each box is squared, cropped, and O-net says whether it is
    still a face and where exactly (how a tracked face is carried to the next frame without the pyramid).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        boxes: ``(N, 4)`` x1, y1, x2, y2 in pixels of ``image`` (e.g. last frame's faces).
        onet: the O-net (module or runner).
        threshold: O-net's face probability below which a box is no longer a face.

    Returns:
        ``(refined (N, 5) float32: x1, y1, x2, y2, probability (0 for a box that is no longer a face, whose
        coordinates are then the input's); landmarks (N, 5, 2) float32 pixels (0 where lost))``, in input order.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), 5), np.float32)
    pts = np.zeros((len(boxes), 5, 2), np.float32)
    out[:, :4] = boxes
    if not len(boxes):
        return out, pts
    square = _square(np.pad(boxes, ((0, 0), (0, 1))))
    keep, b, p = _onet_stage(np.ascontiguousarray(image[..., :3]), square, as_runners((onet,) * 3)[2], threshold)
    out[keep], pts[keep] = b.astype(np.float32), p.astype(np.float32)
    return out, pts
