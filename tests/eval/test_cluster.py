"""Sweeps on Ray: a local instance on 2 CPUs runs the same points as --jobs 2, retries a killed worker, and a
resumed sweep skips what is done. The records are written by the driver, in the --jobs layout."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from codec.clips import make_clip
from eval import sweep
from eval.cluster import RayOptions, run_on_ray

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[2]
TIMES = ("encoding_time", "decoding_time", "decode_fps")  # wall clock: the one thing two runs may not share


@pytest.fixture(scope="module")
def local_ray():
    """One local instance for the module (starting Ray costs seconds); the sweep reuses a running one."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "carphone.y4m"
    make_clip(path, frames=3, crop=(40, 32, 64, 48))
    return path


def _jobs(clip: Path, out: Path) -> list[sweep.Job]:
    hinerv = sweep.hinerv_points(["xxs"], [2000], epochs=2, prune_epochs=1, qat_epochs=1)
    return sweep.plan([sweep.clip_input(clip)], out, hinerv, {})


def _records(jobs: list[sweep.Job]) -> list[dict]:
    return [{k: v for k, v in json.loads(j.path.read_text()).items() if k not in TIMES} for j in jobs]


def test_ray_sweep_gives_the_records_of_jobs_2_and_resumes(local_ray, clip, tmp_path):
    by_jobs, by_ray = _jobs(clip, tmp_path / "jobs"), _jobs(clip, tmp_path / "ray")
    assert sweep.run_jobs(by_jobs, workers=2, progress=False).computed
    summary = sweep.run_jobs(by_ray, progress=False, ray=RayOptions(cpus_per_point=1))
    assert sorted(summary.computed) == sorted(j.label for j in by_ray) and not summary.failed
    assert _records(by_ray) == _records(by_jobs)  # same bytes, same quality: one torch thread per point in both
    assert all(j.path.with_suffix(".bin").is_file() for j in by_ray)  # the bitstreams, beside the records
    again = sweep.run_jobs(by_ray, progress=False, ray=RayOptions())
    assert again.computed == [] and sorted(again.skipped) == sorted(j.label for j in by_ray)


def test_a_killed_worker_is_retried_and_an_error_is_reported(local_ray, clip, tmp_path):
    jobs = _jobs(clip, tmp_path / "out")
    marker = tmp_path / "killed-once"

    def compute(job):
        if job.point == "xxs" and not marker.exists():  # the first run of this point dies as a kill would
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        if job.point == "p2000":
            raise RuntimeError("this point fails")
        return {"point": job.point, "config": job.config()}

    summary = sweep.run_jobs(jobs, progress=False, ray=RayOptions(), compute=compute)
    assert marker.exists() and summary.computed == ["carphone/hinerv/xxs"]
    assert summary.failed == {"carphone/hinerv/p2000": "RuntimeError: this point fails"}
    assert json.loads(jobs[0].path.read_text())["point"] == "xxs" and not jobs[1].path.exists()


def test_a_worker_that_always_dies_fails_its_point_only(local_ray, tmp_path):
    seen = []

    def compute(job):
        if job == "doomed":
            os.kill(os.getpid(), signal.SIGKILL)
        return {"job": job}

    run_on_ray(["doomed", "fine"], compute, RayOptions(max_retries=1),
               lambda job, record, error: seen.append((job, record, type(error).__name__ if error else None)))
    assert sorted(seen, key=str) == [("doomed", None, "WorkerCrashedError"), ("fine", {"job": "fine"}, None)]


def test_options_are_checked():
    with pytest.raises(ValueError, match="--cpus-per-point must be a number >= 0"):
        RayOptions(cpus_per_point=-1)
    with pytest.raises(ValueError, match="needs some resource"):
        RayOptions(cpus_per_point=0)
    assert RayOptions(cpus_per_point=2.5).threads == 2 and RayOptions(cpus_per_point=0.5, gpus_per_point=1).threads == 1


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eval.rd", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env)


def test_cli_refuses_mixed_backend_options(clip, tmp_path):
    r = _cli("--clip", str(clip), "--out", str(tmp_path), "--address", "auto")
    assert r.returncode == 2 and "--address only apply with --backend ray" in r.stderr
    r = _cli("--clip", str(clip), "--out", str(tmp_path), "--backend", "ray", "--jobs", "2")
    assert r.returncode == 2 and "--jobs is for --backend local" in r.stderr


def test_cli_without_ray_says_how_to_install_it(clip, tmp_path):
    hide = tmp_path / "noray"
    hide.mkdir()
    (hide / "ray.py").write_text("raise ImportError('no ray here')\n")  # stands in for a missing package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")])}
    r = _cli("--clip", str(clip), "--out", str(tmp_path / "o"), "--backend", "ray", env=env)
    assert r.returncode == 2 and "pip install 'hinerv[cluster]'" in r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "o" / "points").exists()
