"""VideoFormat / Video invariants, crop and slicing, and read_video through PyAV and by Y4M magic."""
from __future__ import annotations

import shutil

import av
import numpy as np
import pytest

from codec.clips import carphone_path
from codec.video import FrameStack, Video, VideoFormat, VideoFormatError, read_video
from codec.y4m import Y4MLimits, write_y4m


@pytest.fixture(scope="module")
def carphone():
    try:
        return carphone_path()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(str(e))


def make_video(width=8, height=6, chroma="420", bit_depth=8, frames=4, seed=0) -> Video:
    fmt = VideoFormat(width, height, 25, 1, chroma, bit_depth)
    rng = np.random.default_rng(seed)
    return Video(fmt, [rng.integers(0, fmt.max_value + 1, (frames, h, w), fmt.dtype) for h, w in fmt.plane_shapes])


def write_ffv1(path, pix_fmt: str, planes: list[np.ndarray], width: int | None = None, color_range: int = 0) -> None:
    """Encode (T, h, w) planes losslessly with FFV1 in Matroska at 24 fps (packed formats: pass the width)."""
    height, width = planes[0].shape[1], width or planes[0].shape[2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.color_range = color_range
        for t in range(planes[0].shape[0]):
            frame = av.VideoFrame(width, height, pix_fmt)
            for dst, src in zip(frame.planes, planes):
                row = dst.line_size // src.itemsize
                padded = np.zeros((dst.buffer_size // src.itemsize // row, row), src.dtype.newbyteorder("<"))
                padded[: src.shape[1], : src.shape[2]] = src[t]
                dst.update(padded.tobytes())
            frame.pts, frame.color_range = t, color_range
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


# ----------------------------------------------------------------------------------------------- VideoFormat


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"width": 0}, "width"),
        ({"height": -2}, "height"),
        ({"width": 2.0}, "width"),
        ({"fps_num": 0}, "fps_num"),
        ({"fps_den": 0}, "fps_den"),
        ({"chroma": "411"}, "chroma"),
        ({"chroma": "420p10"}, "chroma"),
        ({"bit_depth": 16}, "bit_depth"),
        ({"bit_depth": True}, "bit_depth"),
        ({"aspect": (1, -1)}, "aspect"),
        ({"aspect": (1, 2, 3)}, "aspect"),
        ({"x_tags": ("A B",)}, "x_tags"),
        ({"x_tags": ("A\n",)}, "x_tags"),
        ({"x_tags": (3,)}, "x_tags"),
    ],
)
def test_video_format_validates(kwargs, message):
    args = {"width": 4, "height": 4, "fps_num": 25, "fps_den": 1, "chroma": "420", "bit_depth": 8} | kwargs
    with pytest.raises(ValueError, match=f"VideoFormat.{message}: expected"):
        VideoFormat(**args)


@pytest.mark.parametrize(
    "chroma, subsampling, shapes",
    [
        ("420", (2, 2), [(5, 7), (3, 4), (3, 4)]),
        ("420jpeg", (2, 2), [(5, 7), (3, 4), (3, 4)]),
        ("420mpeg2", (2, 2), [(5, 7), (3, 4), (3, 4)]),
        ("420paldv", (2, 2), [(5, 7), (3, 4), (3, 4)]),
        ("422", (1, 2), [(5, 7), (5, 4), (5, 4)]),
        ("444", (1, 1), [(5, 7)] * 3),
        ("mono", (1, 1), [(5, 7)]),
    ],
)
def test_plane_geometry(chroma, subsampling, shapes):
    fmt = VideoFormat(7, 5, 30000, 1001, chroma, 10)
    assert fmt.subsampling == subsampling and fmt.plane_shapes == shapes
    assert fmt.num_planes == len(shapes)
    assert fmt.frame_bytes == 2 * sum(h * w for h, w in shapes)
    assert fmt.max_value == 1023 and fmt.dtype is np.uint16
    assert fmt.fps == pytest.approx(29.97, abs=1e-3)


def test_format_is_frozen_and_normalises_sequences():
    fmt = VideoFormat(4, 4, 25, 1, "444", 8, [1, 1], ["COLORRANGE=FULL"])
    assert fmt.aspect == (1, 1) and fmt.x_tags == ("COLORRANGE=FULL",)
    assert (fmt.dtype, fmt.max_value, VideoFormat(4, 4, 25, 1, "444", 12).max_value) == (np.uint8, 255, 4095)
    with pytest.raises(AttributeError):
        fmt.width = 8


# ----------------------------------------------------------------------------------------------- Video


def test_video_validates_planes():
    fmt = VideoFormat(8, 6, 25, 1, "420", 8)
    good = [np.zeros((2, 6, 8), np.uint8), np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4), np.uint8)]
    Video(fmt, good)
    with pytest.raises(ValueError, match="expected 3 planes"):
        Video(fmt, good[:1])
    with pytest.raises(ValueError, match="plane 1 expected"):
        Video(fmt, [good[0], np.zeros((2, 6, 8), np.uint8), good[2]])
    with pytest.raises(ValueError, match="uint8"):
        Video(fmt, [good[0].astype(np.uint16)] + good[1:])
    with pytest.raises(ValueError, match="sharing one T"):
        Video(fmt, [good[0][:1]] + good[1:])
    with pytest.raises(ValueError, match="sharing one T"):
        Video(fmt, [p[:0] for p in good])


def test_frames_slices_without_copy():
    video = make_video(frames=5)
    part = video.frames(1, 3)
    assert part.num_frames == 2 and part.format == video.format
    assert np.shares_memory(part.planes[0], video.planes[0])
    assert np.array_equal(part.planes[2], video.planes[2][1:3])
    assert video.frames(4).num_frames == 1
    for start, stop in [(3, 3), (-1, 2), (0, 6)]:
        with pytest.raises(ValueError, match="Video.frames"):
            video.frames(start, stop)


@pytest.mark.parametrize(
    "chroma, window", [("420", (2, 4, 5, 3)), ("422", (2, 1, 4, 5)), ("444", (1, 1, 3, 3)), ("mono", (3, 1, 4, 4))]
)
def test_crop_takes_matching_luma_and_chroma(chroma, window):
    video = make_video(width=9, height=7, chroma=chroma, bit_depth=10)
    x, y, w, h = window
    out = video.crop(x, y, w, h)
    sy, sx = video.format.subsampling
    assert (out.format.width, out.format.height) == (w, h)
    assert np.array_equal(out.planes[0], video.planes[0][:, y : y + h, x : x + w])
    for got, full in zip(out.planes[1:], video.planes[1:]):
        ch, cw = got.shape[1:]
        assert np.array_equal(got, full[:, y // sy : y // sy + ch, x // sx : x // sx + cw])
    assert out.planes[0].flags.c_contiguous and not np.shares_memory(out.planes[0], video.planes[0])


def test_crop_to_the_odd_edge_keeps_the_last_chroma_sample():
    video = make_video(width=9, height=7)
    out = video.crop(4, 2, 5, 5)
    assert out.format.plane_shapes[1] == (3, 3)
    assert np.array_equal(out.planes[1], video.planes[1][:, 1:4, 2:5])


@pytest.mark.parametrize(
    "chroma, window, message",
    [
        ("420", (1, 0, 2, 2), "multiple of 2"),
        ("420", (0, 1, 2, 2), "multiple of 2"),
        ("422", (1, 0, 2, 2), "multiple of 2"),
        ("420", (0, 0, 9, 2), "exceeds the frame"),
        ("444", (0, 5, 1, 2), "exceeds the frame"),
        ("444", (0, 0, 0, 2), "w, h >= 1"),
        ("444", (-1, 0, 1, 1), "x, y >= 0"),
    ],
)
def test_crop_refuses_bad_windows(chroma, window, message):
    with pytest.raises(ValueError, match=message):
        make_video(chroma=chroma).crop(*window)


def test_frame_stack_grows_up_to_its_cap():
    fmt = VideoFormat(2, 2, 25, 1, "mono", 8)
    stack = FrameStack(fmt, capacity=0, max_frames=10)
    for t in range(10):
        stack.append([np.full((2, 2), t, np.uint8)])
    assert stack.to_video().planes[0][:, 0, 0].tolist() == list(range(10))
    with pytest.raises(VideoFormatError, match="more than 10 frames"):
        stack.append([np.zeros((2, 2), np.uint8)])
    with pytest.raises(VideoFormatError, match="no frames"):
        FrameStack(fmt, 4, 4).to_video()


# ----------------------------------------------------------------------------------------------- read_video


def test_read_carphone_mp4(carphone):
    video = read_video(carphone)
    fmt = video.format
    assert (fmt.width, fmt.height, fmt.chroma, fmt.bit_depth) == (176, 144, "420", 8)
    assert (fmt.fps_num, fmt.fps_den, video.num_frames) == (30000, 1001, 120)
    assert [p.shape for p in video.planes] == [(120, 144, 176), (120, 72, 88), (120, 72, 88)]
    with av.open(str(carphone)) as container:
        first = next(container.decode(video=0)).to_ndarray()  # (H * 3 / 2, W) for yuv420p
    assert np.array_equal(video.planes[0][0], first[:144])
    assert 16 < video.planes[0].mean() < 235


def test_read_video_frame_count_and_limits(carphone):
    assert read_video(carphone, frames=5).num_frames == 5
    for frames in (None, 6):
        with pytest.raises(VideoFormatError, match="frame 5: more than max_frames=5"):
            read_video(carphone, frames=frames, limits=Y4MLimits(max_frames=5))
    assert read_video(carphone, frames=5, limits=Y4MLimits(max_frames=5)).num_frames == 5
    with pytest.raises(VideoFormatError, match="frame 2: more than max_total_bytes"):
        read_video(carphone, limits=Y4MLimits(max_total_bytes=2 * 38016))
    with pytest.raises(VideoFormatError, match="size 176x144 outside"):
        read_video(carphone, limits=Y4MLimits(max_width=100))
    with pytest.raises(ValueError, match="frames: expected"):
        read_video(carphone, frames=0)


def test_y4m_is_found_by_magic_not_name(tmp_path, carphone):
    video = make_video(width=7, height=5, chroma="422", bit_depth=12)
    disguised = tmp_path / "clip.mp4"
    write_y4m(disguised, video)
    back = read_video(disguised, frames=2)
    assert back.format == video.format and np.array_equal(back.planes[1], video.planes[1][:2])
    mp4_named_y4m = tmp_path / "clip.y4m"
    shutil.copy(carphone, mp4_named_y4m)
    assert read_video(mp4_named_y4m, frames=1).format.width == 176


@pytest.mark.parametrize(
    "pix_fmt, chroma, depth",
    [
        ("yuv420p10le", "420", 10),
        ("yuv422p10le", "422", 10),
        ("yuv444p12le", "444", 12),
        ("yuv444p", "444", 8),
        ("gray", "mono", 8),
        ("gray10le", "mono", 10),
    ],
)
def test_native_layouts_are_kept(tmp_path, pix_fmt, chroma, depth):
    video = make_video(width=9, height=7, chroma=chroma, bit_depth=depth, frames=2)
    path = tmp_path / "native.mkv"
    write_ffv1(path, pix_fmt, video.planes)
    back = read_video(path)
    fmt = back.format
    assert (fmt.chroma, fmt.bit_depth, fmt.width, fmt.height, fmt.fps_num, fmt.fps_den) == (chroma, depth, 9, 7, 24, 1)
    for got, want in zip(back.planes, video.planes):
        assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("color_range, tags", [(0, ()), (1, ("COLORRANGE=LIMITED",)), (2, ("COLORRANGE=FULL",))])
def test_colour_range_becomes_the_y4m_x_tag(tmp_path, color_range, tags):
    path = tmp_path / "range.mkv"
    write_ffv1(path, "yuv420p", make_video(frames=1).planes, color_range=color_range)
    assert read_video(path).format.x_tags == tags


def test_other_layouts_become_yuv420p(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (2, 6, 8, 4), np.uint8)
    path = tmp_path / "rgb.mkv"
    write_ffv1(path, "bgr0", [rgb.reshape(2, 6, 32)], width=8)
    back = read_video(path)
    assert (back.format.chroma, back.format.bit_depth, back.num_frames) == ("420", 8, 2)
    assert [p.shape for p in back.planes] == [(2, 6, 8), (2, 3, 4), (2, 3, 4)]


@pytest.mark.parametrize("kind", ["missing", "text", "audio"])
def test_non_videos_are_video_format_errors(tmp_path, kind):
    path = tmp_path / f"{kind}.bin"
    if kind == "text":
        path.write_text("hello, this is not a video\n" * 20)
    elif kind == "audio":
        path = tmp_path / "tone.wav"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("pcm_s16le", rate=8000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            frame.sample_rate = 8000
            out.mux(stream.encode(frame))
            out.mux(stream.encode())
    with pytest.raises(VideoFormatError) as info:
        read_video(path)
    expected = {"missing": "cannot open", "text": "cannot read as video", "audio": "no video stream"}[kind]
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message
