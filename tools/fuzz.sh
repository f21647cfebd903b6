#!/usr/bin/env bash
# Fuzz hinerv's parsers of untrusted bytes for SECONDS each: the Y4M reader and the whole bitstream decode path.
#
# Usage: tools/fuzz.sh [SECONDS] [TARGET...]      (default: 60 seconds; targets: y4m decode)
#
# Coverage-guided with atheris when it is installed (pip install atheris), else a hypothesis-driven mutation
# loop. Every input must end in a correct decode or the project's own one-line error (see
# tools/fuzz_targets.py); any other exception, an input slower than FUZZ_TIMEOUT seconds, or an allocation
# past the address-space cap is a failure: its input is saved under FUZZ_DIR/TARGET-crashes/ and the script
# exits 1. At the end each target reports the inputs it was fed and the coverage reached (libFuzzer's edge
# count, and the line coverage of the project's modules that the corpus reaches).
#
# Environment: PYTHON (default .venv/bin/python, else python3), FUZZ_DIR (corpora, logs; default
# ${TMPDIR:-/tmp}/hinerv-fuzz, kept between runs so fuzzing resumes where it stopped; FUZZ_FRESH=1 starts
# over), FUZZ_TIMEOUT (seconds allowed per input, default 20), FUZZ_ENGINE (auto, atheris, hypothesis).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(y4m decode)
case $seconds in ''|*[!0-9]*) echo "usage: tools/fuzz.sh [SECONDS] [y4m|decode...]" >&2; exit 2 ;; esac

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
work=${FUZZ_DIR:-${TMPDIR:-/tmp}/hinerv-fuzz}
[ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$work"
mkdir -p "$work"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # one core per fuzzer; results do not depend on it
export HINERV_FUZZ_SCRATCH=$work/scratch  # files the targets write (libFuzzer exits without clean-up)
mkdir -p "$HINERV_FUZZ_SCRATCH"
trap 'rm -rf "$HINERV_FUZZ_SCRATCH"' EXIT

status=0
summary=()
for t in "${targets[@]}"; do
  corpus=$work/$t-corpus
  log=$work/$t.log
  stats=$work/$t-stats.json
  rm -f "$stats"
  echo "== $t: fuzzing for ${seconds}s (corpus $corpus, log $log)"
  "$PY" tools/fuzz_targets.py fuzz "$t" --seconds "$seconds" --corpus "$corpus" --stats "$stats" \
    --timeout "${FUZZ_TIMEOUT:-20}" --engine "${FUZZ_ENGINE:-auto}" >"$log" 2>&1
  rc=$?
  # libFuzzer's own count when it printed one, else the target's.
  inputs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -z "$inputs" ] && inputs=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["inputs"])' "$stats" 2>/dev/null)
  edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ $rc -ne 0 ]; then
    status=1
    echo "!! $t: FAILED (exit $rc) after ${inputs:-?} inputs; last lines of $log:"
    tail -n 40 "$log"
    ls "$work/$t-crashes" 2>/dev/null | sed "s#^#   input saved: $work/$t-crashes/#"
  fi
  cov=$("$PY" tools/fuzz_targets.py coverage "$t" "$corpus" --json "$work/$t-coverage.json" 2>/dev/null)
  echo "$cov"
  line=$(echo "$cov" | head -1 | sed 's/^[a-z0-9]*: //')
  result=$([ $rc -eq 0 ] && echo "0 failures" || echo "FAILED")
  summary+=("$t: ${inputs:-?} inputs in ${seconds}s, ${edges:-n/a} edges, $line; $result")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
