#!/usr/bin/env bash
# One prepared GPU check (< 8 minutes): the Triton kernel tests compiled for the real GPU (no interpreter), the
# kernel benchmark, the training and decoding benchmarks (with and without torch.compile), and `hinerv decode
# --device cuda` against the CPU decode when the codec's dependencies import.
#
# Run from anywhere on the GPU machine, with the system python that has torch + triton (no install, no network):
#     bash tools/gpu_check.sh            # log also in $OUT/gpu_check.log when OUT is set
# Per-step limits (seconds) can be changed: TEST_TIMEOUT, KBENCH_TIMEOUT, TRAIN_TIMEOUT, TRAIN_COMPILE_TIMEOUT,
# TRAIN_BATCH_TIMEOUT, DECODE_TIMEOUT, DECODE_COMPILE_TIMEOUT, GPU_DECODE_TIMEOUT (by default 480 s together; the
# four steps of the first version took 136 s in all on an H200: tests 36 s, kernels 49 s, train 22 s, decode 22 s).
# Exit status: 0 when every step that ran passed, 1 otherwise (every step runs regardless).
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || PY=python
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
unset TRITON_INTERPRET  # compiled kernels on the GPU, not the CPU interpreter
LOG=/dev/null
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && LOG="$OUT/gpu_check.log"; fi

FAILED=()
step() {  # step NAME TIMEOUT_S COMMAND... : run with a time limit, report rc and wall time
    { set +x; } 2>/dev/null
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS rc
    echo "===== $name (limit ${limit}s)"
    set -x
    timeout --kill-after=10 "$limit" "$@"
    { rc=$?; set +x; } 2>/dev/null
    echo "===== $name: rc=$rc in $((SECONDS - t0)) s$([ $rc -eq 124 ] && echo ' (TIMED OUT)')"
    [ $rc -eq 0 ] || FAILED+=("$name(rc=$rc)")
    set -x
}

main() {
    set -x
    date -u
    nvidia-smi -L || true
    "$PY" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
    "$PY" -c "import triton; print('triton', triton.__version__)" || echo "triton NOT importable: the kernel tests skip"
    step kernel-tests "${TEST_TIMEOUT:-60}" "$PY" -m pytest -q -p no:cacheprovider tests/inr/test_kernels.py
    step bench-kernels "${KBENCH_TIMEOUT:-70}" "$PY" tools/bench_kernels.py --reps 20 --compile 1
    if [ -f tools/bench_train.py ]; then
        step bench-train "${TRAIN_TIMEOUT:-45}" "$PY" tools/bench_train.py --config hinerv-s-1080 --steps 10 --variants fp32-torch,bf16-torch,bf16-triton
        # The first H200 run: 19.5 ms a step of 8 patches in fp32 and in bf16 alike, ~4 TFLOP/s, so the step is
        # bound by kernel launches, not by arithmetic. These two measure the cures: torch.compile (fewer kernels)
        # and CUDA graphs (-cg: no launch cost), and the same step with 4x the patches (Mpixel/s should grow ~4x
        # if launches bound it). torch.compile is in neither the encoder nor the decoder: this says whether it pays.
        step bench-train-compile "${TRAIN_COMPILE_TIMEOUT:-100}" "$PY" tools/bench_train.py --config hinerv-s-1080 --steps 10 --variants bf16,bf16-compile,bf16-compile-cg
        step bench-train-batch "${TRAIN_BATCH_TIMEOUT:-35}" "$PY" tools/bench_train.py --config hinerv-s-1080 --steps 10 --batch 32 --variants fp32-torch,bf16-torch
    else
        echo "tools/bench_train.py not present: skipped"
    fi
    if [ -f tools/bench_decode.py ]; then
        step bench-decode "${DECODE_TIMEOUT:-45}" "$PY" tools/bench_decode.py --config hinerv-s-1080 --frames 32 --batch 4 --variants fp32-torch,bf16-torch,bf16-triton
        step bench-decode-compile "${DECODE_COMPILE_TIMEOUT:-65}" "$PY" tools/bench_decode.py --config hinerv-s-1080 --frames 32 --batch 4 --variants bf16,bf16-compile
    else
        echo "tools/bench_decode.py not present: skipped"
    fi
    if "$PY" -c "import av, constriction, pytorch_msssim, skimage, click, tqdm, skvideo" 2>/dev/null; then
        step gpu-decode "${GPU_DECODE_TIMEOUT:-60}" "$PY" -m pytest -q -p no:cacheprovider tests/codec/test_pipeline.py -k gpu_decode
    else
        echo "the codec's dependencies do not import here: the GPU decode test skipped (carry wheels, see the device notes)"
    fi
    { set +x; } 2>/dev/null
    echo "===== total ${SECONDS} s; failed steps: ${FAILED[*]:-none}"
    [ ${#FAILED[@]} -eq 0 ]
}

main 2>&1 | tee "$LOG"
