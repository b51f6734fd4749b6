"""What the windower accepts as a camera frame and as an audio chunk (rule 7 of :mod:`.windower`).

The checks are pure: they raise :class:`RejectedInput` saying why, and the windower counts
it (``rejected_frames`` / ``rejected_audio``) and logs it; nothing is ever raised to the
caller of ``add_frame`` / ``add_audio``.
"""

from __future__ import annotations

import numpy as np

from synctva_ros.windowing.clock import finite_time

__all__ = ["RejectedInput", "accept_frame", "accept_audio"]


class RejectedInput(ValueError):
    """A frame or an audio chunk the windower drops.

    Attributes:
        log_args: ``(format, *args)`` of the reason, for a logger (formatted only when logged).
    """

    def __init__(self, fmt: str, *args: object) -> None:
        super().__init__(fmt, *args)
        self.log_args = (fmt, *args)

    def __str__(self) -> str:
        fmt, *args = self.log_args
        try:
            return fmt % tuple(args)
        except (TypeError, ValueError):
            return f"{fmt} {args}"


def accept_frame(stamp: object, image: object) -> tuple[float, np.ndarray]:
    """``(stamp, image)`` of a frame with a finite stamp (seconds) and a non-empty ``(H, W, 3)`` uint8 image.

    Raises:
        RejectedInput: a non-finite stamp, or any other image shape, dtype or type.
    """
    if not finite_time(stamp):
        raise RejectedInput("frame with non-finite stamp %r dropped", stamp)
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8 and image.size > 0):
        desc = (image.shape, image.dtype) if isinstance(image, np.ndarray) else type(image).__name__
        raise RejectedInput("frame at %.3f s is not an (H, W, 3) uint8 image: %s dropped", stamp, desc)
    return float(stamp), image  # type: ignore[arg-type]


def accept_audio(stamp: object, samples: object, sample_rate: object) -> tuple[float, np.ndarray, int]:
    """An audio chunk's first-sample time, samples as a 1-D float32 array and rate as an int.

    Args:
        stamp: sensor time of the first sample (seconds).
        samples: ``(S,)`` mono samples in [-1, 1]; ``(S, 1)`` and ``(1, S)`` are flattened.
        sample_rate: Hz.

    Returns:
        ``(stamp, x, rate)``: ``x`` ``(S,)`` float32 (possibly empty), ``rate > 0`` Hz.

    Raises:
        RejectedInput: a non-finite stamp, samples or rate not numeric, not one channel,
            ``rate <= 0``, NaN/inf samples.
    """
    if not finite_time(stamp):
        raise RejectedInput("audio chunk with non-finite stamp %r dropped", stamp)
    try:
        x = np.asarray(samples, dtype=np.float32)
        sr = int(sample_rate)  # type: ignore[call-overload]
    except (TypeError, ValueError) as e:
        raise RejectedInput("audio chunk at %.3f s cannot be read: %s", stamp, e) from e
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1 or sr <= 0:
        raise RejectedInput("audio chunk at %.3f s has shape %s / rate %s: dropped", stamp, x.shape, sample_rate)
    if not np.isfinite(x).all():
        raise RejectedInput("audio chunk at %.3f s has NaN/inf samples: dropped", stamp)
    return float(stamp), x, sr  # type: ignore[arg-type]
