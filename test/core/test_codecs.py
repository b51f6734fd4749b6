"""Image / audio payload decoding against OpenCV and NumPy references."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from synctva_ros.core.codecs import (
    AudioDecodeError,
    ImageDecodeError,
    audio_to_float,
    image_to_rgb,
    resample,
    seconds_to_stamp,
    stamp_to_seconds,
)

RGB = np.ascontiguousarray(astronaut()[::8, ::8])  # (64, 64, 3) real photograph


def _padded(px: np.ndarray, pad: int) -> tuple[bytes, int]:
    rows = px.reshape(px.shape[0], -1).view(np.uint8) if px.dtype != np.uint8 else px.reshape(px.shape[0], -1)
    step = rows.shape[1] + pad
    out = np.zeros((rows.shape[0], step), np.uint8)
    out[:, :rows.shape[1]] = rows
    return out.tobytes(), step


@pytest.mark.parametrize("encoding,code", [("rgb8", None), ("bgr8", cv2.COLOR_RGB2BGR),
                                           ("rgba8", cv2.COLOR_RGB2RGBA), ("bgra8", cv2.COLOR_RGB2BGRA)])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_with_row_padding(encoding, code, pad):
    px = RGB if code is None else cv2.cvtColor(RGB, code)
    data, step = _padded(np.ascontiguousarray(px), pad)
    out = image_to_rgb(64, 64, encoding, 0, step, data)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_mono8_and_mono16_both_byte_orders():
    gray = cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)
    out = image_to_rgb(64, 64, "mono8", 0, 64, array.array("B", gray.tobytes()))
    np.testing.assert_array_equal(out, np.stack([gray] * 3, axis=-1))
    g16 = gray.astype(np.uint16) * 257
    for big, dt in ((0, "<u2"), (1, ">u2")):
        out = image_to_rgb(64, 64, "mono16", big, 128, g16.astype(dt).tobytes())
        np.testing.assert_array_equal(out[..., 0], gray)


def test_uyvy_matches_opencv():
    yuv = cv2.cvtColor(RGB, cv2.COLOR_RGB2YUV)
    # pack 4:2:2 UYVY from full-resolution YUV
    u = yuv[:, 0::2, 1]
    v = yuv[:, 0::2, 2]
    packed = np.stack([u, yuv[:, 0::2, 0], v, yuv[:, 1::2, 0]], axis=-1).reshape(64, 128)
    ours = image_to_rgb(64, 64, "uyvy", 0, 128, packed.tobytes())
    ref = cv2.cvtColor(packed.reshape(64, 64, 2), cv2.COLOR_YUV2RGB_UYVY)
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 2


@pytest.mark.parametrize("kw,msg", [
    (dict(encoding="bayer_rggb8"), "unsupported"),
    (dict(step=10), "step"),
    (dict(data=b"\0" * 40), "bytes"),
    (dict(height=0), "no pixels"),
])
def test_image_errors(kw, msg):
    args = dict(height=4, width=4, encoding="rgb8", is_bigendian=0, step=12, data=b"\0" * 48)
    args.update(kw)
    with pytest.raises(ImageDecodeError, match=msg):
        image_to_rgb(**args)
    assert issubclass(ImageDecodeError, ValueError)


def test_audio_encodings_and_downmix():
    x = np.array([0.5, -0.25, 0.0, 1.0], np.float32)
    s16 = (x * 32767).astype("<i2")
    np.testing.assert_allclose(audio_to_float(s16.tobytes(), "S16LE", 1), x, atol=1e-4)
    s32 = (x.astype(np.float64) * (2**31 - 1)).astype("<i4")
    np.testing.assert_allclose(audio_to_float(array.array("B", s32.tobytes()), "s32le", 1), x, atol=1e-6)
    stereo = np.stack([x, -x], axis=1).astype("<f4")
    np.testing.assert_allclose(audio_to_float(stereo.tobytes(), "F32LE", 2), np.zeros(4), atol=1e-7)
    nan = audio_to_float(np.array([np.nan], "<f4").tobytes(), "F32LE", 1)
    assert np.isnan(nan).all()


@pytest.mark.parametrize("args,msg", [((b"\0" * 3, "S16LE", 1), "whole number"),
                                      ((b"\0" * 4, "MP3", 1), "unsupported"),
                                      ((b"\0" * 4, "S16LE", 0), "channels")])
def test_audio_errors(args, msg):
    with pytest.raises(AudioDecodeError, match=msg):
        audio_to_float(*args)


def test_stamps():
    class T:
        sec, nanosec = 1704067200, 250_000_000

    assert stamp_to_seconds(T()) == pytest.approx(1704067200.25)
    assert seconds_to_stamp(12.5) == (12, 500_000_000)
    assert stamp_to_seconds(1_500_000_000) == pytest.approx(1.5)


def test_resample_length_and_tone():
    t = np.arange(44100) / 44100
    y = resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 44100, 16000)
    assert y.size == 16000 and y.dtype == np.float32
    assert np.argmax(np.abs(np.fft.rfft(y))) == pytest.approx(1000, abs=2)
    with pytest.raises(ValueError):
        resample(y, 0, 16000)


def test_audio_chunk_out_of_spec_rate_or_channels_is_rejected():
    from synctva_ros.core.codecs import AudioDecodeError, audio_chunk_to_float

    data = np.zeros(64, np.int16).tobytes()
    assert audio_chunk_to_float(16000, 1, "S16LE", data).shape == (64,)
    for rate, ch in ((4000, 1), (400_000, 1), (16000, 0), (16000, 33)):
        with pytest.raises(AudioDecodeError):
            audio_chunk_to_float(rate, ch, "S16LE", data)


@pytest.mark.parametrize("kw,msg", [
    (dict(encoding="bayer_rggb8"), "unsupported"),
    (dict(step=10), "step"),
    (dict(data=b"\0" * 40), "bytes"),
    (dict(data=array.array("B", b"\0" * 47)), "bytes"),
    (dict(height=0), "no pixels"),
    (dict(encoding="uyvy", width=3, step=6, data=b"\0" * 24), "even width"),
])
def test_layout_check_rejects_what_the_decoder_rejects(kw, msg):
    """check_image_layout (used for frames that are thinned, never decoded) agrees with image_to_rgb."""
    from synctva_ros.core.codecs import check_image_layout

    args = dict(height=4, width=4, encoding="rgb8", is_bigendian=0, step=12, data=b"\0" * 48)
    args.update(kw)
    with pytest.raises(ImageDecodeError, match=msg):
        check_image_layout(args["height"], args["width"], args["encoding"], args["step"], args["data"])
    with pytest.raises(ImageDecodeError, match=msg):
        image_to_rgb(**args)


def test_layout_check_passes_valid_payloads():
    from synctva_ros.core.codecs import check_image_layout

    assert check_image_layout(4, 4, "RGB8", 12, np.zeros(48, np.uint8)) == "rgb8"
    assert check_image_layout(4, 4, "mono16", 8, np.zeros(16, np.uint16)) == "mono16"  # 32 bytes
    assert check_image_layout(2, 2, "bgr8", 6, [0] * 12) == "bgr8"
