"""What the windower accepts as a camera frame and as an audio chunk (rule 7 of :mod:`.windower`), and which
frames it thins out before decoding (:class:`FrameThinning`).

The checks are pure: they raise :class:`RejectedInput` saying why, and the windower counts
it (``rejected_frames`` / ``rejected_audio``) and logs it; nothing is ever raised to the
caller of ``add_frame`` / ``add_audio``.
"""

from __future__ import annotations

import numpy as np

from synctva_ros.windowing.clock import finite_time
from synctva_ros.windowing.counters import WindowerCounters
from synctva_ros.windowing.stamps import effective_stamp

__all__ = ["RejectedInput", "accept_frame", "accept_audio", "FrameThinning"]


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


class FrameThinning:
    """Rule 10's ``frame_keep_hz`` thinning: at most ``hz`` camera frames kept per second of sensor time.

    Frames closer than ``0.95 / hz`` s (5 % jitter) after the last kept frame are not needed, so a caller may
    skip decoding them. ``hz`` is read at every call (``WindowingConfig.frame_keep_hz``; 0 keeps all).
    """

    def __init__(self) -> None:
        self.last_kept: float | None = None  #: stamp of the newest kept frame (s), ``None`` after a reset

    def wants(self, stamp: float, hz: float) -> bool:
        """Whether a frame stamped ``stamp`` (s) would be kept at ``hz`` frames per second."""
        last = self.last_kept
        return not (hz > 0 and last is not None and last <= stamp < last + 0.95 / hz)

    def kept(self, stamp: float) -> None:
        """A frame stamped ``stamp`` (s) was kept."""
        if self.last_kept is None or stamp > self.last_kept:
            self.last_kept = stamp

    def thin(self, stamp: float, now: float | None, hz: float, counters: WindowerCounters) -> bool:
        """Whether to skip a frame before decoding it (counted ``thinned_frames``, a 0 stamp ``zero_stamps``).

        Args:
            stamp: the frame's stamp (seconds); 0 = unknown: thinned by ``now`` (rule 12).
            now: the caller's arrival time (seconds), if any.
            hz: ``frame_keep_hz``.
            counters: the windower's counters.

        Returns:
            True when the frame is not needed; False when the caller should decode it and add it.
        """
        arrival = now if finite_time(now) else None  # a non-finite arrival time stamps nothing
        t = effective_stamp(stamp, arrival)
        if finite_time(t) and not self.wants(float(t), hz):
            counters.add("thinned_frames")
            counters.add("zero_stamps", int(stamp == 0 and arrival is not None))
            return True
        return False
