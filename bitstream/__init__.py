"""hinerv bitstream: a documented, self-describing binary format (see ``bitstream/FORMAT.md``).

* :mod:`bitstream.container` -- header (magic, version, flags) and CRC-protected sections.
* :mod:`bitstream.fields` -- varints, a bounded byte reader, compact serialisation of typed dataclasses.
* :mod:`bitstream.entropy` -- entropy models with frozen ids and the constriction range coder.
* :mod:`bitstream.tensors` -- quantized tensors and the TENSORS section (format version 1).
* :mod:`bitstream.packed` -- the PACKED_TENSORS section: the same tensors without per-tensor overhead.
* :mod:`bitstream.info` -- where the bytes of a file go.

Nothing here imports torch; any malformed input raises :class:`BitstreamError`.
"""
from __future__ import annotations

from bitstream.container import (
    FORMAT_VERSION,
    MAGIC,
    ContainerLimits,
    Section,
    SectionType,
    read_container,
    require,
    write_container,
)
from bitstream.entropy import (
    MODELS,
    ModelSpec,
    decode,
    empirical_entropy_bits,
    encode,
    estimate_bits,
    fit_and_encode,
)
from bitstream.errors import BitstreamError
from bitstream.fields import (
    Reader,
    pack_dataclass,
    read_uvarint,
    read_varint,
    unpack_dataclass,
    write_uvarint,
    write_varint,
)
from bitstream.info import describe
from bitstream.packed import decode_packed, encode_packed
from bitstream.tensors import QuantizedTensor, TensorLimits, decode_tensors, encode_tensors, tensor_breakdown

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "MODELS",
    "BitstreamError",
    "ContainerLimits",
    "ModelSpec",
    "QuantizedTensor",
    "Reader",
    "Section",
    "SectionType",
    "TensorLimits",
    "decode",
    "decode_packed",
    "decode_tensors",
    "describe",
    "empirical_entropy_bits",
    "encode",
    "encode_packed",
    "encode_tensors",
    "estimate_bits",
    "fit_and_encode",
    "pack_dataclass",
    "read_container",
    "read_uvarint",
    "read_varint",
    "require",
    "tensor_breakdown",
    "unpack_dataclass",
    "write_container",
    "write_uvarint",
    "write_varint",
]
