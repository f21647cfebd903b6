"""The bitstream package stands alone: no torch, no project package but the neutral common/; FORMAT.md ships."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bitstream


def test_imports_no_torch_and_no_other_project_package() -> None:
    code = (
        "import sys, bitstream\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'codec', 'inr', 'compress', 'eval'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_and_format_doc() -> None:
    for name in bitstream.__all__:
        assert hasattr(bitstream, name), name
    doc = (Path(bitstream.__file__).parent / "FORMAT.md").read_text(encoding="utf-8")
    for needle in ("HNRV", "CRC", "TENSORS", "categorical", "gcd", "Versioning", "Limits"):
        assert needle in doc
