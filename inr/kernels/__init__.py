"""Fused kernels for HiNeRV's upsampling stages, each beside a pure-PyTorch reference.

``inr.kernels.reference`` holds the references (always importable); ``inr.kernels.triton_encoding`` the Triton
kernels (importable only with ``triton``). ``resolve_kernels`` turns the ``--kernels {auto,triton,torch}`` choice
into the implementation a model on a given device uses (nanoGPT's flash flag, made explicit).

To run the Triton kernels on a CPU (tests), set ``TRITON_INTERPRET=1`` before ``triton`` is first imported.
"""
from __future__ import annotations

import functools
import os

import torch

KERNEL_MODES = ("auto", "triton", "torch")


@functools.cache
def triton_available() -> bool:
    """Whether ``triton`` can be imported (says nothing about a GPU being present)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # absent, or a broken install (missing driver libraries, ABI mismatch): no Triton
        return False
    return True


def triton_interpret() -> bool:
    """Whether Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve_kernels(mode: str, device: torch.device | str) -> str:
    """The kernel implementation to use: ``'triton'`` or ``'torch'``.

    Args:
        mode: ``'auto'`` (Triton on a CUDA device when Triton imports, PyTorch otherwise), ``'triton'``
            (required: refused where it cannot run) or ``'torch'`` (the references).
        device: where the model runs.
    Raises:
        ValueError: an unknown mode, or ``'triton'`` without Triton, or on a CPU without ``TRITON_INTERPRET=1``.
    """
    if mode not in KERNEL_MODES:
        raise ValueError(f"kernels must be one of {', '.join(KERNEL_MODES)}, got {mode!r}")
    device = torch.device(device)
    if mode == "torch":
        return "torch"
    on_gpu = device.type == "cuda"
    if mode == "auto":
        return "triton" if on_gpu and triton_available() else "torch"
    if not triton_available():
        raise ValueError("kernels='triton' needs the triton package, which cannot be imported; "
                         "install it or use kernels='auto'/'torch'")
    if on_gpu or (device.type == "cpu" and triton_interpret()):
        return "triton"
    raise ValueError(f"kernels='triton' runs on CUDA devices (or on the CPU with TRITON_INTERPRET=1), "
                     f"got device {device}")


def upsample_add_encoding(x_in: torch.Tensor, tiles: torch.Tensor, in_region: tuple[int, int, int, int],
                          out_region: tuple[int, int, int, int], stride: int, kernels: str = "torch") -> torch.Tensor:
    """One stage's ``upsample_bilinear(x_in) + encoding``, by the implementation ``resolve_kernels`` chose.

    Args:
        x_in: (B, h, w, C) holding ``in_region`` of the stage input (after the LayerNorm).
        tiles: (B, s, s, C) encoding per sub-pixel phase (``HierarchicalEncoding.tiles(t)``).
        in_region, out_region: regions of the stage input and output.
        stride: the stage's upsampling factor.
        kernels: ``'triton'`` (fused kernel) or ``'torch'`` (the reference: the very ops of ``inr.layers``).
    Returns:
        (B, oh, ow, C).
    """
    if kernels == "triton":
        from .triton_encoding import upsample_add_encoding as fused

        return fused(x_in, tiles, in_region, out_region, stride)
    if kernels != "torch":
        raise ValueError(f"kernels must be 'triton' or 'torch' (see resolve_kernels), got {kernels!r}")
    from .reference import upsample_add_encoding_ref

    return upsample_add_encoding_ref(x_in, tiles, in_region, out_region, stride)


__all__ = ["KERNEL_MODES", "resolve_kernels", "triton_available", "triton_interpret", "upsample_add_encoding"]
