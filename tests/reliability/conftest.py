"""Shared setup of the reliability tests: hypothesis profiles, the fuzz targets, a tiny clip.

Profiles (pick with ``HINERV_FUZZ_PROFILE``; tests take their settings from it, so other test folders keep
theirs):

* ``reliability-fast`` (default): a few dozen examples per property, derandomized, so the normal suite stays
  fast and reproducible; the whole of ``tests/reliability`` runs in about a minute on 2 cores.
* ``reliability-long``: 100x the examples, random: ``HINERV_FUZZ_PROFILE=reliability-long pytest
  tests/reliability -k fuzz`` (``tools/fuzz.sh`` is the time-bounded, coverage-guided run).

Every example has a deadline: an input that takes longer is a failure ("no hang").
"""
from __future__ import annotations

import importlib.util
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]

settings.register_profile(
    "reliability-fast", max_examples=40, derandomize=True, deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
settings.register_profile(
    "reliability-long", max_examples=4000, derandomize=False, deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
PROFILE_NAME = os.environ.get("HINERV_FUZZ_PROFILE", "reliability-fast")


def _load_fuzz_targets():
    """tools/fuzz_targets.py as the module ``fuzz_targets`` (tools/ is not a package)."""
    if "fuzz_targets" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fuzz_targets", ROOT / "tools" / "fuzz_targets.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["fuzz_targets"] = module
        spec.loader.exec_module(module)
    return sys.modules["fuzz_targets"]


_load_fuzz_targets()


def pytest_report_header(config):
    return f"reliability hypothesis profile: {PROFILE_NAME}"


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """carphone, 4 frames cropped to 64x48: the clip every encode in these tests uses."""
    from codec.clips import make_clip

    path = tmp_path_factory.mktemp("clip") / "clip.y4m"
    make_clip(path, frames=4, crop=(40, 32, 64, 48))
    return path
