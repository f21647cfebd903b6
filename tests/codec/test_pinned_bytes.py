"""The bytes an encode writes, pinned: a refactor of the pipeline must not change what a fixed input encodes to.

Each case runs ``hinerv encode`` in a fresh process on one thread (the CPU's float reductions depend on the thread
count, so the bytes are pinned for one) on a 4-frame 64x48 crop of carphone. A deliberate change of what the
encoder computes (a default, a rounding, a new field in the file) moves these pins: say why in the commit that
moves them, and print the new values with ``pytest tests/codec/test_pinned_bytes.py``.

Also: files written by earlier versions decode, to the same samples (``tests/fixtures/v1_*.bin``, written by
the encoder of 2026-12-04 before the quantizer registry; the Y4M they decode to is pinned by its sha256).
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from codec.clips import make_clip
from codec.decoder import decode_file
from codec.y4m import write_y4m

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
COMMON = ["--preset", "s", "--epochs", "4", "--batch-size", "2",
          "--seed", "0", "-q"]
# case: (extra CLI options, the (file size, sha256) each machine the suite has run on wrote). The sbs and entropy
# files came out differently (same sizes) on a second x86 machine of this workplace (2026-12-05, AVX-512, fresh
# package installs), the same on HEAD as on the change then made, and the same whatever ATEN_CPU_CAPABILITY says;
# the cause was not found. On a third (AMD EPYC, 2026-12-07; CI's then) the files without a target matched the
# first machine's and the targets' sizes moved (700 -> 702, 819 -> 914 B): a controller that steers the size
# turns a last-bit difference of the floats into another stopping point. Each machine's bytes are deterministic,
# so a change of what the encoder computes still moves every digest.
PINNED = {
    # moved on 2026-12-06 (#19): the tensors in a PACKED_TENSORS section (format version 2: no names, no shapes,
    # one range-coder stream) and the laplace/gaussian fits costed as constriction codes (the edge bins take the
    # tails): the same weights in fewer bytes without a target (uniform 1281 -> 1181, sbs 1529 -> 1436, entropy
    # 1508 -> 1419); the targets land elsewhere (the controllers see the new layout: 689 -> 706 B for 700, 853 ->
    # 872 B for 900)
    "uniform": (["--quant", "uniform"],
                ((1181, "f496a52634b91e406754dc8dbd18d72d89cc093f82addd62e170a19d138171d0"),)),
    # sbs and entropy moved on 2026-12-07 (#19): format version 3 leaves out the meta byte of every record when
    # each tensor has one scale and its symbols' nominal width (both here): 17 bytes fewer (1436 -> 1419,
    # 1419 -> 1402); the targets' controllers count the smaller layout (700: 701 B as before, other bytes; 900:
    # 872 -> 819 B, the SBS search landing lower on this 4-epoch toy)
    "sbs": (["--quant", "sbs"],
            ((1419, "7ecb92c6696882a38a3a2a5a55e0161a10716a0c188a5a5377e4674444cf249a"),)),
    # entropy and entropy-target moved again on 2026-12-07 (#19): the rate stage peaks at 2x --lr (1402 -> 1382;
    # 701 -> 702 B for 700). entropy-target moved on 2026-12-06: its rate stage runs 4,000 steps (was 1,000).
    # Both moved once more on 2026-12-07: format version 4 trains and stores the steps and entropy models on the
    # compact grids (one-byte steps, two-byte loc and scale): 1382 -> 1349; 702 -> 700 B for 700.
    # And again on 2026-12-07: format version 5 stores the records in bits (bitstream/bitpacked.py): 1349 -> 1321;
    # 699 B for 700 (the earlier machines' 700 / 702 B outcomes are gone with the layout: this is the AMD one's)
    "entropy": (["--quant", "entropy"],
                ((1321, "9134fff21595490f1b977849fcf61de17e524af9e88ab0d73b8bb9ec6f4e2c5f"),)),
    "entropy-target": (["--quant", "entropy", "--target-size", "700"],
                       ((699, "cd44db87f9246064561c1bc1789273f44dbda51af96c634e611bb4f6a39c7a21"),)),
    "sbs-target": (["--quant", "sbs", "--target-size", "900"],
                   ((819, "eecc3cd74b3df256cfd8ecefc6af2b3abf6c04dc2c5d6c27c3cfc86bc90bdf24"),
                    (914, "7176f6862a4f165c9258127e35a7c084f2694e13daa45822535bdf7c854c86b7"))),
}
# Cases whose bytes depend on the machine's float paths: on a machine none of their pins came from, the file is
# held to what holds on every machine (a size pinned alike on all of them; a target's contract, below) and its
# outcome is reported (a warning to add to the pin), not failed
MACHINE_DEPENDENT = {"sbs", "entropy", "entropy-target", "sbs-target"}
# the file's size over the target each quantizer promises (compress/quantizers.py, fit_to_size's 2%): entropy
# lands within 2%; sbs's last mile only shrinks, so it ends under 102% (the search may land it far below)
TARGET_BOUNDS = {"entropy": (0.98, 1.02), "sbs": (0.0, 1.02)}
ONE_THREAD_CLI = "import sys, torch; torch.set_num_threads(1); from codec.cli import main; sys.argv[0] = 'hinerv'; main()"
# the Y4M each committed file decodes to
FIXTURE_DECODES = {
    "v1_uniform.bin": "c5d02e3349fdac2329486be496311a297f742ed4051fd555dc14ca59e3a978b5",
    "v1_sbs.bin": "77f0798810af9ca7e484869872ed4b9a3df479b13fbc4531a4117f7930bf3a36",
    "v1_entropy.bin": "43368a8d4d9f2bdc211959c5c77a91b0109ee9e590b6e71b91d8d964ab5bf9a3",
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "carphone.y4m"
    make_clip(path, frames=4, crop=(40, 32, 64, 48))
    return path


def _meets_target(extra: list[str], size: int) -> bool | None:
    """Whether ``size`` keeps the target's contract; None without a target."""
    if "--target-size" not in extra:
        return None
    target = int(extra[extra.index("--target-size") + 1])
    low, high = TARGET_BOUNDS[extra[extra.index("--quant") + 1]]
    return low * target <= size <= high * target


@pytest.mark.parametrize("case", sorted(PINNED))
def test_encode_writes_the_pinned_bytes(clip, tmp_path, case):
    extra, outcomes = PINNED[case]
    out = tmp_path / f"{case}.bin"
    r = subprocess.run([sys.executable, "-c", ONE_THREAD_CLI, "encode", str(clip), str(out), *COMMON, *extra],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    outcome = (len(data), hashlib.sha256(data).hexdigest())
    message = f"{case}: the encoder now writes {outcome[0]} bytes, sha256 {outcome[1]}"
    if outcome in outcomes:
        return
    assert case in MACHINE_DEPENDENT, message
    meets = _meets_target(extra, outcome[0])
    if meets is None:
        sizes = {size for size, _ in outcomes}
        assert len(sizes) == 1 and outcome[0] in sizes, message
    else:
        assert meets, message
    warnings.warn(f"{message}: an outcome this machine adds to the pin")


def test_the_pins_of_a_target_keep_its_contract():
    """The per-machine pins of a target must themselves meet it, or the fallback above would hide a miss."""
    for case, (extra, outcomes) in PINNED.items():
        assert all(_meets_target(extra, size) is not False for size, _ in outcomes), case


@pytest.mark.parametrize("name", sorted(FIXTURE_DECODES))
def test_files_of_earlier_versions_decode_to_the_same_samples(tmp_path, name):
    out = tmp_path / "decoded.y4m"
    write_y4m(out, decode_file(FIXTURES / name))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == FIXTURE_DECODES[name]
