"""The one exception type for bad files.

Every problem found while *reading* a hinerv file (bad magic, unsupported version, CRC mismatch, truncation,
out-of-range values, entropy-coder failures...) surfaces as :class:`BitstreamError` with a one-line message.
Problems found while *writing* (a caller passing impossible values) are plain ``ValueError``/``TypeError``.
"""
from __future__ import annotations


class BitstreamError(ValueError):
    """A hinerv file (or one of its sections) is malformed, corrupted or unsupported."""
