"""Make ``torchvision`` (and so ``transformers``) importable next to a CPU-only torch.

The PyPI torchvision 0.28.0 wheel is a CUDA build whose C++ ops fail to load next to
the CPU torch 2.13.0 wheel; importing it then raises ``RuntimeError: operator
torchvision::nms does not exist``. Its models and transforms are pure Python, so
registering the two missing operator schemas is enough for them. This is done only
when torchvision's own extension did not load; on machines with a matching build
(ROS/Jetson installs, CUDA torch) nothing is touched. ``torchvision.ops.nms`` and
``torchvision.io`` stay unusable on the affected machines: decode images with OpenCV.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["ensure_torchvision"]

_done = False
_lib = None


def ensure_torchvision() -> None:
    """Idempotently register ``torchvision::nms``/``qnms`` schemas if torchvision's ops are missing.

    Call before the first ``import torchvision`` or ``import transformers``.
    Raises nothing; a torchvision that is not installed is left alone.
    """
    global _done, _lib
    if _done:
        return
    _done = True
    if importlib.util.find_spec("torchvision") is None:
        return
    import torch  # deferred: only when torchvision is installed; this module itself needs no torch

    try:
        torch.ops.torchvision.nms  # noqa: B018  (already registered: real extension loaded)
        return
    except (AttributeError, RuntimeError):
        pass
    try:
        import torchvision  # noqa: F401  (deferred: must come after the check above; ~1 s to import)

        return
    except RuntimeError:
        pass
    _lib = torch.library.Library("torchvision", "DEF")
    _lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
