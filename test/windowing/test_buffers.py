"""Bounded per-modality buffers: ordering, duplicates, bounds, audio range queries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synctva_ros.windowing.buffers import AudioBuffer, FrameBuffer
from synctva_ros.core.window import TimedFrame

IMG = np.zeros((2, 2, 3), np.uint8)


def test_frame_buffer_orders_and_rejects_duplicates():
    b = FrameBuffer(10.0, 100)
    assert b.insert(TimedFrame(1.0, IMG)) == "appended"
    assert b.insert(TimedFrame(3.0, IMG)) == "appended"
    assert b.insert(TimedFrame(2.0, IMG)) == "inserted"
    assert b.insert(TimedFrame(2.0, IMG)) == "duplicate"
    assert [f.stamp for f in b.query(0.0, 10.0)] == [1.0, 2.0, 3.0]
    assert [f.stamp for f in b.query(2.0, 3.0)] == [2.0, 3.0]  # inclusive bounds
    assert b.query(3.5, 4.0) == []


def test_frame_buffer_bounds_time_and_count():
    b = FrameBuffer(1.0, 3)
    for t in (0.0, 0.5, 1.0, 1.2):
        b.insert(TimedFrame(t, IMG))
    assert len(b) == 3 and b.oldest == 0.5  # count cap evicted t=0
    b.insert(TimedFrame(2.0, IMG))
    assert b.oldest >= 1.0  # time horizon
    assert b.insert(TimedFrame(0.1, IMG)) == "too_old"
    assert b.evicted == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=80), st.floats(0.5, 20), st.integers(1, 30))
def test_frame_buffer_never_exceeds_bounds(stamps, buffer_s, max_frames):
    b = FrameBuffer(buffer_s, max_frames)
    for t in stamps:
        b.insert(TimedFrame(t, IMG))
        assert len(b) <= max_frames
        if len(b):
            assert b.newest - b.oldest <= buffer_s
            got = [f.stamp for f in b.query(-1, 1000)]
            assert got == sorted(set(got))


def test_audio_query_contiguous_with_gap_zero_filled():
    sr = 100
    b = AudioBuffer(10.0, sr)
    b.insert(0.0, np.ones(50, np.float32))        # 0.00 .. 0.49
    b.insert(0.6, np.full(40, 2.0, np.float32))   # 0.60 .. 0.99 (gap of 10 samples)
    r = b.query(0.0, 1.0)
    assert r.start == pytest.approx(0.0)
    assert r.samples.size == 100
    assert np.all(r.samples[:50] == 1) and np.all(r.samples[50:60] == 0) and np.all(r.samples[60:] == 2)
    assert r.gaps == 1 and r.gap_samples == 10


def test_audio_query_sub_range_and_first_sample_time():
    sr = 1000
    b = AudioBuffer(10.0, sr)
    x = np.arange(1000, dtype=np.float32)
    b.insert(5.0, x)
    r = b.query(5.2, 5.3)
    assert r.start == pytest.approx(5.2)
    np.testing.assert_array_equal(r.samples, x[200:301])
    assert b.query(7.0, 8.0).samples.size == 0
    assert b.query(4.0, 5.0).samples.size == 1  # the sample at exactly 5.0


def test_audio_out_of_order_duplicate_and_bounds():
    sr = 100
    b = AudioBuffer(1.0, sr)
    assert b.insert(0.5, np.ones(10, np.float32)) == "appended"
    assert b.insert(0.3, np.ones(10, np.float32)) == "inserted"
    assert b.insert(0.3 + 0.001, np.ones(10, np.float32)) == "duplicate"  # within half a sample
    assert b.insert(0.0, np.zeros(0, np.float32)) == "empty"
    b.insert(3.0, np.ones(10, np.float32))
    assert b.span() <= 1.0 + 1e-9
    assert b.insert(0.7, np.ones(10, np.float32)) == "too_old"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 50), st.integers(1, 300)), max_size=40), st.floats(0.5, 5))
def test_audio_buffer_never_exceeds_bounds(chunks, buffer_s):
    sr = 100
    b = AudioBuffer(buffer_s, sr)
    for start, n in chunks:
        b.insert(start, np.ones(n, np.float32))
        assert b.span() <= buffer_s + 1.0 / sr + 1e-9
