"""Message payload -> ndarray conversions shared by the node and the bag reader.

Pure functions over plain attributes, so they work on rclpy messages and on
``rosbags`` dataclasses alike (both use the ROS field names). They replace
``cv_bridge`` (not installable on every target) for the encodings a
camera driver publishes, honouring ``step`` (row padding) and ``is_bigendian``
as ``sensor_msgs/Image`` specifies (REP-118 / sensor_msgs image_encodings.hpp).

Errors: :class:`ImageDecodeError` and :class:`AudioDecodeError` (both
``ValueError``) for unknown encodings or sizes that do not add up.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = [
    "audio_chunk_to_float",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_CHANNELS",
    "ImageDecodeError",
    "AudioDecodeError",
    "check_image_layout",
    "IMAGE_ENCODINGS",
    "AUDIO_ENCODINGS",
    "image_to_rgb",
    "audio_to_float",
    "stamp_to_seconds",
    "seconds_to_stamp",
    "resample",
]


class ImageDecodeError(ValueError):
    """A ``sensor_msgs/Image`` payload cannot be decoded (encoding, step or size)."""


class AudioDecodeError(ValueError):
    """An ``AudioChunk`` payload cannot be decoded (encoding, channels or size)."""


# encoding -> (channels, numpy dtype (little-endian), channel order to RGB)
_IMAGE = {
    "rgb8": (3, np.uint8, (0, 1, 2)),
    "bgr8": (3, np.uint8, (2, 1, 0)),
    "rgba8": (4, np.uint8, (0, 1, 2)),
    "bgra8": (4, np.uint8, (2, 1, 0)),
    "mono8": (1, np.uint8, None),
    "8uc1": (1, np.uint8, None),
    "mono16": (1, np.uint16, None),
    "16uc1": (1, np.uint16, None),
    "rgb16": (3, np.uint16, (0, 1, 2)),
    "bgr16": (3, np.uint16, (2, 1, 0)),
    "uyvy": (2, np.uint8, None),  # yuv422: U0 Y0 V0 Y1
    "yuv422": (2, np.uint8, None),
    "yuyv": (2, np.uint8, None),  # yuv422_yuy2: Y0 U0 Y1 V0
    "yuv422_yuy2": (2, np.uint8, None),
}

#: Image encodings :func:`image_to_rgb` accepts (sensor_msgs image_encodings names).
IMAGE_ENCODINGS: tuple[str, ...] = tuple(_IMAGE)

_AUDIO = {"S16LE": ("<i2", 32768.0), "S32LE": ("<i4", 2147483648.0), "F32LE": ("<f4", 1.0)}

#: Audio encodings of ``synctva_ros/AudioChunk`` that :func:`audio_to_float` accepts.
AUDIO_ENCODINGS: tuple[str, ...] = tuple(_AUDIO)


def _as_bytes(data: Any) -> bytes | memoryview | np.ndarray:
    if isinstance(data, np.ndarray):
        return data.view(np.uint8).reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    # rclpy gives array.array('B') for uint8[]; lists are accepted too
    try:
        return memoryview(data).cast("B")
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def _nbytes(data: Any) -> int:
    if isinstance(data, np.ndarray):
        return int(data.nbytes)
    try:
        return memoryview(data).nbytes  # bytes, bytearray, array.array('B')
    except TypeError:
        return len(data)  # a list of ints


def _yuv422_to_rgb(pairs: np.ndarray, uyvy: bool) -> np.ndarray:
    """(H, W, 2) uint8 packed 4:2:2 -> (H, W, 3) uint8 RGB (ITU-R BT.601 video range, as OpenCV/cv_bridge)."""
    h, w, _ = pairs.shape
    flat = pairs.reshape(h, w // 2, 4).astype(np.float32)
    if uyvy:
        u, y0, v, y1 = flat[..., 0], flat[..., 1], flat[..., 2], flat[..., 3]
    else:
        y0, u, y1, v = flat[..., 0], flat[..., 1], flat[..., 2], flat[..., 3]
    y = 1.164 * np.maximum(np.stack([y0, y1], axis=-1).reshape(h, w) - 16.0, 0.0)  # OpenCV clamps Y < 16
    u = np.repeat(u, 2, axis=1) - 128.0
    v = np.repeat(v, 2, axis=1) - 128.0
    r = y + 1.596 * v
    g = y - 0.391 * u - 0.813 * v
    b = y + 2.018 * u
    return np.clip(np.stack([r, g, b], axis=-1) + 0.5, 0, 255).astype(np.uint8)


def check_image_layout(height: int, width: int, encoding: str, step: int, data: Any) -> str:
    """Check a ``sensor_msgs/Image``'s layout fields without touching its pixels (cheap).

    :func:`image_to_rgb` runs the same checks, so a frame that passes here and is then
    skipped (e.g. thinned) would have decoded.

    Args:
        height, width: image size in pixels; encoding: the ``encoding`` field;
        step: bytes per row; data: the payload (only its size in bytes is read).

    Returns:
        The encoding in lower case (a key of :data:`IMAGE_ENCODINGS`).

    Raises:
        ImageDecodeError: as :func:`image_to_rgb`.
    """
    enc = str(encoding).lower()
    if enc not in _IMAGE:
        raise ImageDecodeError(f"unsupported image encoding '{encoding}' (supported: {', '.join(_IMAGE)})")
    channels, dtype, _ = _IMAGE[enc]
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"image has no pixels ({width}x{height})")
    itemsize = np.dtype(dtype).itemsize
    if channels == 2 and width % 2:
        raise ImageDecodeError(f"{encoding} needs an even width, got {width}")
    row = width * channels * itemsize
    if step < row:
        raise ImageDecodeError(f"step {step} < {row} bytes per row for {width} px of {encoding}")
    if step % itemsize:
        raise ImageDecodeError(f"step {step} is not a multiple of the {itemsize}-byte sample size")
    nbytes = _nbytes(data)
    if nbytes < step * height:
        raise ImageDecodeError(f"image data has {nbytes} bytes, expected step*height = {step * height}")
    return enc


def image_to_rgb(height: int, width: int, encoding: str, is_bigendian: int | bool, step: int,
                 data: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` payload to RGB.

    Args:
        height, width: image size in pixels.
        encoding: one of :data:`IMAGE_ENCODINGS` (case-insensitive). Mono images
            are replicated to three channels; 16-bit images are scaled to 8 bit
            (``>> 8``); alpha is dropped; yuv422 (``uyvy``) and ``yuyv`` are
            converted with BT.601 video-range coefficients (as
            OpenCV's ``COLOR_YUV2RGB_UYVY``, which cv_bridge uses).
        is_bigendian: byte order of multi-byte samples.
        step: bytes per row including padding (``>= width * bytes_per_pixel``).
        data: the ``uint8[]`` payload (bytes, array.array, list or ndarray).

    Returns:
        ``(H, W, 3)`` uint8 C-contiguous RGB array (a copy).

    Raises:
        ImageDecodeError: unknown encoding, zero size, odd width for yuv422,
            ``step`` smaller than a row, or ``len(data) < step * height``.
    """
    enc = check_image_layout(height, width, encoding, step, data)
    channels, dtype, order = _IMAGE[enc]
    height, width, step = int(height), int(width), int(step)
    itemsize = np.dtype(dtype).itemsize
    row = width * channels * itemsize
    buf = np.frombuffer(_as_bytes(data), dtype=np.uint8)
    rows = buf[: step * height].reshape(height, step)[:, :row]
    dt = np.dtype(dtype).newbyteorder(">" if is_bigendian else "<")
    px = np.ascontiguousarray(rows).view(dt).reshape(height, width, channels)
    if itemsize == 2:
        px = (px.astype(np.uint16) >> 8).astype(np.uint8)
    if channels == 2:
        return _yuv422_to_rgb(px, uyvy=enc in ("uyvy", "yuv422"))
    if order is None:
        return np.ascontiguousarray(np.repeat(px, 3, axis=2))
    return np.ascontiguousarray(px[:, :, list(order)])


#: AudioChunk.sample_rate bounds in Hz and channels upper bound (msg/AudioChunk.msg).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 192_000
MAX_CHANNELS = 32


def audio_chunk_to_float(sample_rate: int, channels: int, encoding: str, data: Any) -> np.ndarray:
    """An ``AudioChunk``'s fields -> ``(S,)`` float32 mono, after checking them against msg/AudioChunk.msg.

    Shared by the node and the offline bag reader so both accept and reject the same chunks.

    Raises:
        AudioDecodeError: ``sample_rate`` outside [8000, 192000] Hz, ``channels`` outside [1, 32],
            or undecodable ``data`` (see :func:`audio_to_float`).
    """
    if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(f"sample_rate {int(sample_rate)} Hz outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]")
    if not 1 <= int(channels) <= MAX_CHANNELS:
        raise AudioDecodeError(f"channels {int(channels)} outside [1, {MAX_CHANNELS}]")
    return audio_to_float(data, encoding, int(channels))


def audio_to_float(data: Any, encoding: str, channels: int) -> np.ndarray:
    """Decode an ``AudioChunk`` payload to mono float32.

    Args:
        data: raw little-endian interleaved samples (``uint8[]``).
        encoding: ``"S16LE"``, ``"S32LE"`` or ``"F32LE"`` (case-insensitive).
        channels: interleaved channels (1..32); mixed to mono by averaging.

    Returns:
        ``(S,)`` float32 samples in [-1, 1] (integer encodings scaled by
        ``2**15`` / ``2**31``; float samples clipped to [-1, 1], NaN kept so the
        windower can reject the chunk).

    Raises:
        AudioDecodeError: unknown encoding, ``channels`` outside 1..32, or a byte
            count that is not a whole number of frames.
    """
    enc = str(encoding).upper()
    if enc not in _AUDIO:
        raise AudioDecodeError(f"unsupported audio encoding '{encoding}' (supported: {', '.join(_AUDIO)})")
    channels = int(channels)
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioDecodeError(f"channels must be in 1..{MAX_CHANNELS}, got {channels}")
    dtype, scale = _AUDIO[enc]
    buf = np.frombuffer(_as_bytes(data), dtype=np.uint8)
    frame = np.dtype(dtype).itemsize * channels
    if buf.size % frame:
        raise AudioDecodeError(f"{buf.size} bytes is not a whole number of {channels}-channel {enc} frames")
    x = buf.view(dtype).astype(np.float32)
    if scale != 1.0:
        x /= np.float32(scale)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    if enc == "F32LE":
        x = np.clip(x, -1.0, 1.0)  # NaN survives clip
    return np.ascontiguousarray(x, dtype=np.float32)


def stamp_to_seconds(stamp: Any) -> float:
    """``builtin_interfaces/Time`` (fields ``sec``, ``nanosec``) -> seconds as float.

    Also accepts an int (nanoseconds) or a float (seconds).
    """
    if isinstance(stamp, bool):
        raise TypeError("a bool is not a time stamp")
    if isinstance(stamp, int):
        return stamp * 1e-9
    if isinstance(stamp, float):
        return stamp
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_stamp(t: float) -> tuple[int, int]:
    """Seconds -> ``(sec, nanosec)`` with ``0 <= nanosec < 1e9`` (rounded to the nanosecond)."""
    ns = int(round(t * 1e9))
    return ns // 1_000_000_000, ns % 1_000_000_000


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono audio with a polyphase FIR (``scipy.signal.resample_poly``).

    Args:
        samples: ``(S,)`` float32.
        from_rate, to_rate: rates in Hz (positive integers).

    Returns:
        ``(ceil(S * to_rate / from_rate),)`` float32. Each call filters its chunk
        independently (zero-padded edges), so chunked streams get a small edge
        transient per chunk; the timing of every chunk stays exact because
        chunks carry their own start stamps.

    Raises:
        ValueError: non-positive rates.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    x = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate or x.size == 0:
        return x.copy() if from_rate == to_rate else np.zeros(0, np.float32)
    from scipy.signal import resample_poly  # deferred: scipy.signal takes ~0.3 s to import; only resampling needs it

    frac = Fraction(int(to_rate), int(from_rate))
    y = resample_poly(x, frac.numerator, frac.denominator).astype(np.float32)
    n = math.ceil(x.size * to_rate / from_rate)
    return np.ascontiguousarray(y[:n])
