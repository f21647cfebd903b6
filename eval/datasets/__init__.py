"""Evaluation data sets: UVG and MCL-JCV manifests, raw-YUV names and reading, file matching, downscaling.

See :mod:`eval.datasets.manifests` for the conventions.
"""
from eval.datasets.manifests import (MANIFESTS, MCL_JCV, UVG, Manifest, MissingSequencesError, RawGeometry,
                                     SequenceSource, SequenceSpec, concat_videos, downscale, find_sequences,
                                     get_manifest, parse_raw_name, raw_frame_count, read_raw_yuv, two_scene_clip)

__all__ = [
    "MANIFESTS", "MCL_JCV", "UVG", "Manifest", "MissingSequencesError", "RawGeometry", "SequenceSource",
    "SequenceSpec", "concat_videos", "downscale", "find_sequences", "get_manifest", "parse_raw_name",
    "raw_frame_count", "read_raw_yuv", "two_scene_clip",
]
