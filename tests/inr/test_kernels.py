"""Fused upsampling/encoding kernels against their PyTorch references (values and gradients).

On a CPU the Triton kernels run in the interpreter (``TRITON_INTERPRET=1`` is set before the kernel module is
imported), in fp32; where CUDA is available the variable is left alone, so the compiled kernels are tested (the
bf16/fp16 cases too) and the rest of a test session's Triton (Inductor) is not sent to the interpreter.
The kernel tests skip when triton is not importable; the reference, dispatch and ``resolve_kernels`` tests
always run.
"""
import os
import subprocess
import sys

import torch

if not torch.cuda.is_available():  # a GPU machine runs the compiled kernels (and Inductor's, not interpreted)
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernel module is imported

import pytest  # noqa: E402

import inr.kernels as kernels  # noqa: E402
from inr.kernels import resolve_kernels, upsample_add_encoding  # noqa: E402
from inr.kernels.reference import (phase_gather_add_ref, upsample_add_encoding_ref,  # noqa: E402
                                   upsample_bilinear_ref)
import torch.nn.functional as F  # noqa: E402

from inr.layers import HierarchicalEncoding  # noqa: E402
from inr.regions import plan_regions  # noqa: E402

INTERPRET = kernels.triton_interpret()
DEVICE = "cpu" if INTERPRET or not torch.cuda.is_available() else "cuda"
needs_triton = pytest.mark.skipif(not kernels.triton_available() or (DEVICE == "cpu" and not INTERPRET),
                                  reason="triton is not installed (or no GPU and TRITON_INTERPRET unset)")

# (B, C, stride, in_region, out_region): odd channel counts, regions not aligned to the stride, frame edges
# (the edge clamp) and interior crops, single rows/columns.
CASES = [
    (2, 5, 2, (1, 6, 2, 9), (3, 11, 5, 17)),      # crop inside, odd offsets
    (2, 12, 2, (0, 4, 0, 3), (0, 8, 0, 6)),       # whole map, both edge clamps
    (2, 33, 3, (0, 4, 0, 5), (1, 12, 2, 14)),     # top/left frame edge, crop not aligned
    (1, 12, 5, (2, 5, 1, 4), (11, 24, 6, 19)),    # stride 5, interior
    (2, 5, 5, (0, 2, 3, 5), (0, 10, 15, 25)),     # stride 5, two input pixels per axis
    (1, 7, 3, (4, 5, 0, 6), (13, 14, 0, 17)),     # one input row, one output row
    (2, 3, 1, (2, 7, 0, 4), (3, 6, 1, 4)),        # stride 1 (allowed by the config)
]


def _inputs(case, dtype=torch.float32, seed=0):
    b, c, s, rin, rout = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, rin[1] - rin[0], rin[3] - rin[2], c, generator=g).to(DEVICE, dtype)
    t = torch.randn(b, s, s, c, generator=g).to(DEVICE, dtype)
    return x.requires_grad_(), t.requires_grad_()


# ------------------------------------------------------------------------------------------- resolve_kernels

def test_resolve_kernels_modes(monkeypatch):
    assert resolve_kernels("torch", "cpu") == "torch"
    assert resolve_kernels("torch", torch.device("cuda")) == "torch"
    assert resolve_kernels("auto", "cpu") == "torch"  # never the interpreter unless asked for
    monkeypatch.setattr(kernels, "triton_available", lambda: True)
    assert resolve_kernels("auto", "cuda") == "triton"
    assert resolve_kernels("triton", "cuda:0") == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_kernels("triton", "cpu") == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        resolve_kernels("triton", "cpu")
    monkeypatch.setattr(kernels, "triton_available", lambda: False)
    assert resolve_kernels("auto", "cuda") == "torch"
    with pytest.raises(ValueError, match="triton"):
        resolve_kernels("triton", "cuda")
    with pytest.raises(ValueError, match="auto, triton, torch"):
        resolve_kernels("fast", "cpu")


def test_triton_absent_is_handled(monkeypatch):
    """Without triton: detection says so, and the package and its references import and run (a fresh process)."""
    monkeypatch.setitem(sys.modules, "triton", None)
    assert kernels.triton_available.__wrapped__() is False
    code = ("import sys; sys.modules['triton'] = None\n"
            "import torch, inr.kernels as k\n"
            "assert not k.triton_available() and k.resolve_kernels('auto', 'cuda') == 'torch'\n"
            "x, t = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 2, 4)\n"
            "print(tuple(k.upsample_add_encoding(x, t, (0, 2, 0, 3), (1, 4, 0, 6), 2, 'torch').shape))\n"
            "assert 'inr.kernels.triton_encoding' not in sys.modules\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 3, 6, 4)"


def test_dispatch_torch_path_is_the_model_path():
    b, c, s, rin, rout = CASES[2]
    torch.manual_seed(0)
    x, t = torch.randn(b, rin[1] - rin[0], rin[3] - rin[2], c), torch.randn(b, s, s, c)
    got = upsample_add_encoding(x, t, rin, rout, s, "torch")
    torch.testing.assert_close(got, upsample_add_encoding_ref(x, t, rin, rout, s), rtol=0, atol=0)
    with pytest.raises(ValueError, match="kernels"):
        upsample_add_encoding(x, t, rin, rout, s, "auto")


# ------------------------------------------------------------------------------------------------ references

@pytest.mark.parametrize("case", CASES[:4])
def test_reference_is_the_model_path(case):
    """The reference equals whole-map bilinear upsampling, cropped, plus HierarchicalEncoding's own add."""
    from inr.regions import upsample_source

    b, c, s, _, rout = case
    size = (-(-rout[1] // s) + 1, -(-rout[3] // s) + 1)
    rin = upsample_source(rout, s, size)  # the held region the model plans: every tap of rout inside it
    torch.manual_seed(0)
    enc = HierarchicalEncoding(s, c, frames=8, local_frames=4, channels=2, levels=3)
    t = torch.tensor([1, 6][:b])
    whole = torch.randn(b, *size, c)  # the map from the origin, so no region offsets are involved
    x = whole[:, rin[0]:rin[1], rin[2]:rin[3]]
    up = F.interpolate(whole.permute(0, 3, 1, 2), scale_factor=s, mode="bilinear", align_corners=False)
    expected = up.permute(0, 2, 3, 1)[:, rout[0]:rout[1], rout[2]:rout[3]] + enc(t, rout)
    ref = upsample_add_encoding_ref(x, enc.tiles(t), rin, rout, s)
    torch.testing.assert_close(ref, expected, rtol=1e-5, atol=1e-5)


def test_reference_refuses_bad_regions():
    x, t = torch.zeros(1, 3, 4, 2), torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="not inside"):
        upsample_add_encoding_ref(x, t, (0, 3, 0, 4), (0, 7, 0, 8), 2)
    with pytest.raises(ValueError, match="in_region"):
        upsample_add_encoding_ref(x, t, (0, 2, 0, 4), (0, 4, 0, 8), 2)
    with pytest.raises(ValueError, match="tiles"):
        upsample_add_encoding_ref(x, torch.zeros(1, 3, 3, 2), (0, 3, 0, 4), (0, 6, 0, 8), 2)


# --------------------------------------------------------------------------------------------------- kernels

def _check_against_reference(fused_fn, ref_fn, inputs, atol=1e-5, rtol=1e-5, grads=(True, True)):
    x, t = inputs
    x.requires_grad_(grads[0])
    t.requires_grad_(grads[1])
    out = fused_fn(x, t)
    ref = ref_fn(x, t)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=atol, rtol=rtol)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1)).to(ref.device, ref.dtype)
    wrt = [v for v, need in zip((x, t), grads) if need]
    got = torch.autograd.grad(out, wrt, g)
    want = torch.autograd.grad(ref, wrt, g)
    for a, e in zip(got, want):
        assert a.dtype == e.dtype and a.shape == e.shape
        torch.testing.assert_close(a, e, atol=atol * 4, rtol=rtol * 4)


@needs_triton
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}C{c[1]}s{c[2]}")
def test_upsample_add_encoding_matches_reference(case):
    from inr.kernels.triton_encoding import upsample_add_encoding

    _, _, s, rin, rout = case
    _check_against_reference(lambda x, t: upsample_add_encoding(x, t, rin, rout, s),
                             lambda x, t: upsample_add_encoding_ref(x, t, rin, rout, s), _inputs(case))


@needs_triton
@pytest.mark.parametrize("y0,x0,s,c", [(3, 7, 2, 5), (4, 0, 3, 33), (11, 2, 5, 12)])
def test_phase_gather_add_matches_reference(y0, x0, s, c):
    from inr.kernels.triton_encoding import phase_gather_add

    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 9, 13, c, generator=g).to(DEVICE)
    t = torch.randn(2, s, s, c, generator=g).to(DEVICE)
    _check_against_reference(lambda x, t: phase_gather_add(x, t, y0, x0),
                             lambda x, t: phase_gather_add_ref(x, t, y0, x0), (x, t))


@needs_triton
@pytest.mark.parametrize("case", [(1, 17, 2, (1, 5, 2, 13), (3, 9, 5, 25)), (1, 17, 3, (0, 3, 1, 7), (1, 9, 4, 18))],
                         ids=["s2", "s3"])
def test_gpu_block_sizes(monkeypatch, case):
    """The GPU tiling (several channel blocks, column blocks, row chunks of the phase sum), small blocks."""
    from inr.kernels import triton_encoding as te

    monkeypatch.setattr(te, "_INTERPRET_LARGE_BLOCKS", False)
    monkeypatch.setattr(te, "_FWD_BLOCK", 128)
    monkeypatch.setattr(te, "_BWD_TILE", 256)
    _, _, s, rin, rout = case
    _check_against_reference(lambda x, t: te.upsample_add_encoding(x, t, rin, rout, s),
                             lambda x, t: upsample_add_encoding_ref(x, t, rin, rout, s), _inputs(case))
    if s == 3:
        x, t = _inputs(case)
        _check_against_reference(lambda x, t: te.phase_gather_add(x, t, rout[0], rout[2]),
                                 lambda x, t: phase_gather_add_ref(x, t, rout[0], rout[2]), (x, t))


@needs_triton
def test_only_needed_gradients():
    from inr.kernels.triton_encoding import upsample_add_encoding

    _, _, s, rin, rout = case = CASES[2]
    for grads in ((True, False), (False, True)):
        _check_against_reference(lambda x, t: upsample_add_encoding(x, t, rin, rout, s),
                                 lambda x, t: upsample_add_encoding_ref(x, t, rin, rout, s), _inputs(case),
                                 grads=grads)


@needs_triton
def test_non_contiguous_inputs_and_grad():
    """A cropped (non-contiguous) input, as the model's crop_to produces, and a non-contiguous upstream grad."""
    from inr.kernels.triton_encoding import upsample_add_encoding

    g = torch.Generator().manual_seed(3)
    big = torch.randn(2, 6, 8, 5, generator=g).to(DEVICE)
    t = torch.randn(2, 3, 3, 5, generator=g).to(DEVICE).requires_grad_()
    x = big[:, 1:5, 2:7].requires_grad_()  # a strided view
    rin, rout = (1, 5, 2, 7), (4, 14, 7, 20)
    out = upsample_add_encoding(x, t, rin, rout, 3)
    ref = upsample_add_encoding_ref(x, t, rin, rout, 3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    gout = torch.randn(2, 13, 10, 5, generator=g).to(DEVICE).transpose(1, 2)  # (2, 10, 13, 5), strided
    torch.testing.assert_close(torch.autograd.grad(out, (x, t), gout), torch.autograd.grad(ref, (x, t), gout),
                               atol=4e-5, rtol=4e-5)


@needs_triton
def test_mixed_dtypes_as_under_autocast():
    """Under autocast the LayerNorm output is fp32 and the projected tiles bf16: out fp32, grads per input."""
    from inr.kernels.triton_encoding import upsample_add_encoding

    _, _, s, rin, rout = case = CASES[0]
    x, t = _inputs(case)
    t = t.detach().to(torch.bfloat16).requires_grad_()
    _check_against_reference(lambda x, t: upsample_add_encoding(x, t, rin, rout, s),
                             lambda x, t: upsample_add_encoding_ref(x, t, rin, rout, s), (x, t), atol=1e-2,
                             rtol=1e-2)


@needs_triton
@pytest.mark.gpu
@pytest.mark.skipif(DEVICE == "cpu", reason="16-bit kernels are checked on a GPU (fp32 in the interpreter)")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_against_fp32_reference(dtype):
    from inr.kernels.triton_encoding import upsample_add_encoding

    _, _, s, rin, rout = case = CASES[2]
    x, t = _inputs(case, dtype)
    out = upsample_add_encoding(x, t, rin, rout, s)
    assert out.dtype == dtype
    ref = upsample_add_encoding_ref(x.float(), t.float(), rin, rout, s)
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)
    g = torch.randn_like(ref)
    gx, gt = torch.autograd.grad(out, (x, t), g.to(dtype))
    xr, tr = x.detach().float().requires_grad_(), t.detach().float().requires_grad_()
    gxr, gtr = torch.autograd.grad(upsample_add_encoding_ref(xr, tr, rin, rout, s), (xr, tr), g.to(dtype).float())
    torch.testing.assert_close(gx.float(), gxr, atol=5e-2, rtol=2e-2)
    torch.testing.assert_close(gt.float(), gtr, atol=5e-1, rtol=2e-2)  # sums over ~100 pixels


@needs_triton
def test_dispatch_triton_path():
    b, c, s, rin, rout = case = CASES[3]
    x, t = _inputs(case)
    torch.testing.assert_close(upsample_add_encoding(x, t, rin, rout, s, "triton"),
                               upsample_add_encoding_ref(x, t, rin, rout, s), atol=1e-5, rtol=1e-5)


@needs_triton
def test_model_patch_regions():
    """The regions a patch render of a stride-(3, 2) model asks of each stage (inr.regions.plan_regions)."""
    from inr.kernels.triton_encoding import upsample_add_encoding

    sizes, strides = [(4, 5), (12, 15), (24, 30)], (3, 2)
    plan = plan_regions((7, 13, 11, 29), sizes, strides, (2, 1))
    current = plan.stem_out
    for n, s in enumerate(strides):
        case = (1, 6, s, current, plan.blocks[n])
        _check_against_reference(lambda x, t: upsample_add_encoding(x, t, current, plan.blocks[n], s),
                                 lambda x, t: upsample_add_encoding_ref(x, t, current, plan.blocks[n], s),
                                 _inputs(case, seed=n))
        current = plan.keep[n]


@needs_triton
def test_kernel_refuses_bad_regions():
    from inr.kernels.triton_encoding import upsample_add_encoding

    x, t = torch.zeros(1, 3, 4, 2, device=DEVICE), torch.zeros(1, 2, 2, 2, device=DEVICE)
    with pytest.raises(ValueError, match="not inside"):
        upsample_add_encoding(x, t, (0, 3, 0, 4), (1, 7, 0, 8), 2)


@needs_triton
@pytest.mark.skipif(DEVICE != "cpu", reason="checks the CPU refusal")
def test_kernel_refuses_cpu_without_interpreter(monkeypatch):
    from inr.kernels.triton_encoding import upsample_add_encoding

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, t = torch.zeros(1, 3, 4, 2), torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="CUDA"):
        upsample_add_encoding(x, t, (0, 3, 0, 4), (0, 6, 0, 8), 2)


@needs_triton
def test_custom_op_registrations():
    """Schema, fake (meta) kernel and autograd registration are consistent (what torch.compile relies on)."""
    from inr.kernels import triton_encoding as te

    x, t = _inputs(CASES[0])
    torch.library.opcheck(te._upsample_add_op, (x, t, 8, 12, 1, 1, 1, 1),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    # the custom-op path (what torch.compile calls) gives the eager path's values and gradients
    _, _, s, rin, rout = CASES[0]
    _check_against_reference(lambda x, t: te._upsample_add_op(x, t, 8, 12, 1, 1, 1, 1),
                             lambda x, t: upsample_add_encoding_ref(x, t, rin, rout, s), (x, t))
    _check_against_reference(lambda x, t: te._phase_add_op(x, t, 1, 0),
                             lambda x, t: phase_gather_add_ref(x, t, 3, 4), (x, t))
