"""Sweeps on a Ray cluster: each (sequence, rate point) is one Ray task with its own CPUs and GPUs.

The driver (the machine that runs ``python -m eval.rd|uvg|mcljcv --backend ray``) plans the sweep, skips the
points whose record exists, sends the others to Ray, and writes each record itself, atomically, as its task
returns: the layout is the one ``--jobs`` makes (``eval.sweep``). A task whose worker dies (killed, out of
memory, its node lost) runs again, up to ``max_retries`` times; an error inside a point is reported with its
message and the others go on. Killing the driver loses only the points in flight: rerun the same command and it
redoes just the missing ones (a hinerv point continues from its checkpoint).

The sweep folder and the sequences must be readable and writable at the same path on every node (a shared
filesystem): workers write the bitstreams, logs and checkpoints there, as ``--jobs`` workers do. Ray is an
optional dependency: ``pip install 'hinerv[cluster]'``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = ["BACKENDS", "RayOptions", "require_ray", "run_on_ray"]

BACKENDS = ("local", "ray")
INSTALL_HINT = "--backend ray needs Ray, which is not installed: pip install 'hinerv[cluster]' (or pip install ray)"


@dataclass(frozen=True)
class RayOptions:
    """Where and with what each point runs."""

    address: str | None = None  # a running cluster ('auto', 'HOST:6379', 'ray://HOST:10001'); None: a local one
    cpus_per_point: float = 1.0  # CPUs Ray reserves for a point; its torch threads = max(1, floor of this)
    gpus_per_point: float = 0.0  # GPUs Ray reserves for a point (fractions share a GPU)
    max_retries: int = 3  # runs of a point whose worker died, after the first
    local_cpus: int | None = None  # a local instance's CPUs (default: all of this machine's)

    def __post_init__(self) -> None:
        for name in ("cpus_per_point", "gpus_per_point"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a number >= 0, got {v!r}")
        if self.cpus_per_point == 0 and self.gpus_per_point == 0:
            raise ValueError("a point needs some resource: --cpus-per-point or --gpus-per-point above 0")
        if not (isinstance(self.max_retries, int) and self.max_retries >= 0):
            raise ValueError(f"max_retries must be an int >= 0, got {self.max_retries!r}")

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus_per_point))


def require_ray() -> Any:
    """The ``ray`` module, or a ValueError saying how to install it (the CLIs make that one line, exit 2)."""
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return ray


def _run_point(compute: Callable[[Any], dict], job: Any, threads: int) -> dict:
    """One point on a Ray worker: torch gets the threads Ray reserved for it."""
    import torch

    torch.set_num_threads(threads)
    return compute(job)


def _connect(ray: Any, options: RayOptions) -> bool:
    """Join the cluster, or start a local instance; True when this call started it (and must stop it)."""
    if ray.is_initialized():
        return False
    common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if options.address is not None:
        ray.init(address=options.address, **common)
    else:  # one machine: an instance on the loopback interface that ends with the sweep (Ray counts the CPUs)
        ray.init(num_cpus=options.local_cpus, _node_ip_address="127.0.0.1", **common)
    return True


def run_on_ray(jobs: Sequence[Any], compute: Callable[[Any], dict], options: RayOptions,
               done: Callable[[Any, dict | None, BaseException | None], None]) -> None:
    """Run ``compute(job)`` for every job as a Ray task; ``done(job, record, error)`` on the driver as each
    ends (in the order they end). ``compute`` is shipped to the workers (cloudpickle: any function will do)."""
    ray = require_ray()
    started = _connect(ray, options)
    try:
        task = ray.remote(_run_point).options(num_cpus=options.cpus_per_point, num_gpus=options.gpus_per_point,
                                              max_retries=options.max_retries, retry_exceptions=False)
        compute_ref = ray.put(compute)
        pending = {task.remote(compute_ref, job, options.threads): job for job in jobs}
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the point's own error, as it was raised there
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    done(job, None, cause)
                except ray.exceptions.RayError as exc:  # its worker died more often than max_retries allows
                    done(job, None, exc)
                else:
                    done(job, record, None)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()
