"""windowing.inputs: what is accepted as a frame or an audio chunk (rule 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synctva_ros.windowing.inputs import RejectedInput, accept_audio, accept_frame


def test_frames():
    img = np.zeros((4, 6, 3), np.uint8)
    stamp, out = accept_frame(np.float64(1.5), img)
    assert stamp == 1.5 and type(stamp) is float and out is img
    for bad_stamp in (math.nan, None, "x"):
        with pytest.raises(RejectedInput, match="non-finite stamp"):
            accept_frame(bad_stamp, img)
    for bad in (np.zeros((4, 6), np.uint8), np.zeros((4, 6, 4), np.uint8), np.zeros((4, 6, 3), np.float32),
                np.zeros((0, 6, 3), np.uint8), [[0]], "image"):
        with pytest.raises(RejectedInput, match=r"is not an \(H, W, 3\) uint8 image") as e:
            accept_frame(2.0, bad)
        fmt, *args = e.value.log_args
        assert fmt % tuple(args) == str(e.value) and str(e.value).startswith("frame at 2.000 s")


def test_audio():
    stamp, x, sr = accept_audio(3, [0.0, 0.5, -0.5], 16000.0)
    assert (stamp, sr) == (3.0, 16000) and x.dtype == np.float32 and x.shape == (3,)
    assert accept_audio(0.0, np.ones((5, 1)), 8000)[1].shape == (5,)
    assert accept_audio(0.0, np.ones((1, 5)), 8000)[1].shape == (5,)
    assert accept_audio(0.0, np.zeros(0), 8000)[1].size == 0
    cases = [((math.inf, np.zeros(3), 16000), "non-finite stamp"),
             ((0.0, ["a"], 16000), "cannot be read"),
             ((0.0, np.zeros(3), "fast"), "cannot be read"),
             ((0.0, np.zeros((2, 3)), 16000), r"has shape \(2, 3\) / rate 16000: dropped"),
             ((0.0, np.zeros(3), 0), "has shape .* / rate 0: dropped"),
             ((0.0, np.array([0.0, math.nan]), 16000), "NaN/inf samples")]
    for args, message in cases:
        with pytest.raises(RejectedInput, match=message):
            accept_audio(*args)


def test_an_unformattable_reason_still_reads():
    e = RejectedInput("frame at %.3f s is bad", "not-a-number")
    assert "frame at %.3f s is bad" in str(e) and isinstance(e, ValueError)
