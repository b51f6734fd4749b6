"""ONNX export of the facial-expression experts (:mod:`synctva_ros.features.faces.expression`).

Same exporter and opset as the fusion model (:func:`~synctva_ros.backends.export._export`, opset
:data:`~synctva_ros.backends.export.DEFAULT_OPSET`). The graph returns the softmax probabilities in the
expert's own class order and the penultimate embedding.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .export import DEFAULT_OPSET, _export

__all__ = ["FACE_EXPERT_OUTPUTS", "export_face_expert"]

FACE_EXPERT_OUTPUTS = ("probabilities", "embedding")


class _ProbsAndEmbedding(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, emb = self.net.forward_features(faces)
        return torch.softmax(logits, 1), emb


def export_face_expert(net: torch.nn.Module, path: str | Path, input_shape: tuple[int, int, int],
                       opset: int = DEFAULT_OPSET, exporter: str = "torchscript") -> Path:
    """Export an expert with ``forward_features`` (``MiniXception``, ``FaceApiExpressionNet``) to ONNX.

    Args:
        net: the expert (put in eval mode, on CPU).
        path: output ``.onnx``.
        input_shape: ``(C, H, W)`` of one face (``(1, 64, 64)`` fer, ``(3, 112, 112)`` face-api).
        opset, exporter: as :func:`~synctva_ros.backends.export.export_fusion`.

    Shapes:
        ``faces`` ``(N, C, H, W)`` float32 -> ``probabilities`` ``(N, 7)``, ``embedding`` ``(N, F)``; ``N``
        dynamic (``faces``).

    Raises:
        ExportError: the exporter failed.
    """
    path = Path(path)
    wrapper = _ProbsAndEmbedding(net.to("cpu").eval()).eval()
    x = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0))
    axes = {"faces": {0: "faces"}, "probabilities": {0: "faces"}, "embedding": {0: "faces"}}
    _export(wrapper, (x,), path, ["faces"], list(FACE_EXPERT_OUTPUTS), axes, opset, exporter)
    return path
