"""Byte accounting of a hinerv file, for ``hinerv info``: the rate is the whole file."""
from __future__ import annotations

from typing import Any, Sequence

from bitstream.container import HEADER_SIZE, ContainerLimits, SectionType, read_container
from bitstream.packed import packed_breakdown
from bitstream.tensors import TensorLimits, tensor_breakdown

__all__ = ["describe"]


def describe(
    data: bytes, limits: ContainerLimits = ContainerLimits(), tensor_limits: TensorLimits = TensorLimits(),
    shapes: Sequence[tuple[int, ...]] | None = None,
) -> dict[str, Any]:
    """Check a whole file and say where its bytes go (``shapes``: the tensors' shapes, for a PACKED_TENSORS
    section that leaves them out).

    Returns:
        ``{"total_bytes", "header_bytes", "framing_bytes", "sections": [{"type", "name", "offset", "bytes",
        "payload_bytes"}...], "tensors": [tensor_breakdown rows] , "tensor_totals": {...}}``. Section ``bytes``
        include the type byte, length varint and CRC (END included), so ``header_bytes + sum(bytes) ==
        total_bytes``; ``framing_bytes`` is the part of that total that is not payload.

    Raises:
        BitstreamError: the file is malformed (see :func:`bitstream.container.read_container`).
    """
    sections = read_container(data, limits)
    rows = [
        {"type": s.type, "name": s.name, "offset": s.offset, "bytes": s.size, "payload_bytes": len(s.payload)}
        for s in sections
    ]
    tensors: list[dict[str, Any]] = []
    unshared = 0  # a packed section's stream bytes that no tensor's share accounts for (the coder's flush)
    for s in sections:
        if s.type == SectionType.TENSORS:
            tensors = tensor_breakdown(s.payload, tensor_limits)
        elif s.type == SectionType.PACKED_TENSORS:
            tensors, unshared = packed_breakdown(s.payload, shapes, tensor_limits)
    totals = {
        key: sum(t[key] for t in tensors)
        for key in ("numel", "bytes_payload", "bytes_scales", "bytes_side", "bytes_name", "bytes")
    }
    totals["bytes_side"] += unshared
    totals["bytes"] += unshared
    totals["bytes_stream_flush"] = unshared
    totals["count"] = len(tensors)
    return {
        "total_bytes": len(data),
        "header_bytes": HEADER_SIZE,
        "framing_bytes": HEADER_SIZE + sum(r["bytes"] - r["payload_bytes"] for r in rows),
        "sections": rows,
        "tensors": tensors,
        "tensor_totals": totals,
    }
