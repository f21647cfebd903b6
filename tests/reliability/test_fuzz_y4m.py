"""Fuzzing the Y4M reader: every mutation of a valid file decodes correctly or is one VideoFormatError line.

The target (``tools/fuzz_targets.run_y4m``) reads each input four ways (tiny and default limits, seekable and
streaming) and fails on any other exception, on the two readers disagreeing, and on an accepted video that
does not survive a write/read round trip. Here it is driven by hypothesis; ``tools/fuzz.sh`` runs it
coverage-guided for a given time.
"""
from __future__ import annotations

import io
import os
import tracemalloc

import fuzz_targets as ft
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from codec.video import VideoFormatError
from codec.y4m import Y4MLimits, read_y4m

PROFILE = settings.get_profile(os.environ.get("HINERV_FUZZ_PROFILE", "reliability-fast"))
SEEDS = ft.y4m_seeds()
OPS = st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]),
                         st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=5)
HEADER_OP = st.tuples(st.sampled_from("WHFIACX"), st.sampled_from(ft.HEADER_EXTREMES),
                      st.sampled_from(["set", "add", "drop"]))


def test_seeds_are_valid_and_read_back_exactly():
    for data in SEEDS:
        accepted = ft.run_y4m(data)
        assert len(accepted) == 2, data[:60]  # tiny and default limits both accept every seed
    video = read_y4m(io.BytesIO(SEEDS[0]))
    assert ft.y4m_bytes(video) == SEEDS[0]


@settings(PROFILE, max_examples=PROFILE.max_examples * 4)
@given(st.sampled_from(SEEDS), OPS)
@example(SEEDS[0], [("truncate", 30, 0)])
@example(SEEDS[3], [("set", 40, 0xFF), ("set", 41, 0xFF)])  # a 10-bit sample above 1023
def test_byte_mutations(seed, ops):
    ft.run_y4m(ft.mutate_bytes(seed, ops))


@settings(PROFILE, max_examples=PROFILE.max_examples * 4)
@given(st.sampled_from(SEEDS), st.lists(HEADER_OP, min_size=1, max_size=3), st.lists(OPS, max_size=1))
@example(SEEDS[0], [("W", "16384", "set"), ("H", "16384", "set"), ("C", "444p12", "set")], [])
@example(SEEDS[0], [("W", "9999999999", "set")], [])
@example(SEEDS[0], [("I", "t", "set")], [])
@example(SEEDS[0], [("C", "444alpha", "set")], [])
@example(SEEDS[1], [("F", "1:0", "set")], [])
def test_extreme_header_values(seed, header_ops, byte_ops):
    data = seed
    for tag, value, mode in header_ops:
        data = ft.mutate_y4m_header(data, tag, value, mode)
    for ops in byte_ops:
        data = ft.mutate_bytes(data, ops)
    ft.run_y4m(data)


@settings(PROFILE, max_examples=PROFILE.max_examples * 2)
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes(data, with_magic):
    ft.run_y4m((b"YUV4MPEG2 " if with_magic else b"") + data)


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def _read_all_ways(data: bytes) -> None:
    for stream in (io.BytesIO(data), io.BufferedReader(ft.Unseekable(data, chunk=1 << 16))):
        try:
            read_y4m(stream)
        except VideoFormatError:
            pass


@settings(PROFILE, max_examples=PROFILE.max_examples)
@given(st.sampled_from(SEEDS), st.lists(HEADER_OP, min_size=1, max_size=3))
@example(SEEDS[0], [("W", "16384", "set"), ("H", "16384", "set"), ("C", "444p12", "set")])
@example(SEEDS[5], [("W", "16384", "set"), ("H", "16384", "set")])
def test_allocation_is_bounded_by_the_input_not_the_header(seed, header_ops):
    """With the default limits a header may announce 1.6 GB frames; the reader must not reserve them before
    the bytes arrive (seekable: it knows the file size; streaming: it grows as frames come in)."""
    data = seed
    for tag, value, mode in header_ops:
        data = ft.mutate_y4m_header(data, tag, value, mode)
    assert _peak(lambda: _read_all_ways(data)) < 4 * len(data) + (1 << 20)


def test_streaming_reader_does_not_reserve_announced_frames():
    raw = b"YUV4MPEG2 W16384 H16384 C444p12\nFRAME\n" + bytes(1000)
    with pytest.raises(VideoFormatError, match=r"frame 0: truncated \(got 1000 of 1610612736 bytes\)"):
        read_y4m(io.BufferedReader(ft.Unseekable(raw, chunk=4096)))
    assert _peak(lambda: _read_all_ways(raw)) < 1 << 20


def test_streaming_reader_still_reads_big_frames():
    fmt_line = b"YUV4MPEG2 W1024 H1024 Cmono\n"
    frames = [np.full(1 << 20, i, np.uint8).tobytes() for i in range(3)]
    raw = fmt_line + b"".join(b"FRAME\n" + f for f in frames)
    video = read_y4m(io.BufferedReader(ft.Unseekable(raw, chunk=100_000)))
    assert video.num_frames == 3 and [int(video.planes[0][t, 5, 7]) for t in range(3)] == [0, 1, 2]
    peak = _peak(lambda: read_y4m(io.BufferedReader(ft.Unseekable(raw, chunk=100_000))))
    assert peak < 4 * len(raw)


def test_limits_hold_under_fuzzing_limits():
    """The tiny limits the fuzzer uses are each reachable: a sanity check that the target exercises them."""
    limits = ft.fuzz_y4m_limits()
    assert isinstance(limits, Y4MLimits)
    too_wide = ft.mutate_y4m_header(SEEDS[0], "W", str(limits.max_width + 1), "set")
    with pytest.raises(VideoFormatError, match="W must be an integer"):
        read_y4m(io.BytesIO(too_wide), limits=limits)
    many = SEEDS[5] + b"".join(b"FRAME\n" + bytes(8) for _ in range(limits.max_frames))
    with pytest.raises(VideoFormatError, match="max_frames"):
        read_y4m(io.BytesIO(many), limits=limits)
