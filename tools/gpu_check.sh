#!/usr/bin/env bash
# Run on a machine with an NVIDIA GPU, from anywhere:  bash tools/gpu_check.sh
# Sets up make's virtual environment, then (each step time-boxed, all in under 8 minutes on one
# modern GPU):
#   1. pytest -m gpu                      real kernels, real memory, fp16/bf16 vs fp32 on CUDA
#   2. tooncrafter-studio doctor --selftest --json
#   3. full 512x320x16 generations with fill-rule weights at 25 and 50 steps in each memory mode
# Results go to $OUT if set, else ./gpu_check_results: one JSON per step and summary.json.
# GPU_CHECK_DRY_RUN=1 runs step 3 on the CPU with the reduced model (what the test suite checks).
#
# bash tools/gpu_check.sh --quick: one short run (about 7 minutes on an H100, install included) for a
# bare machine: any python3 (3.11 or later), only the 'tooncrafter' extra (skipped when torch is
# already importable), torch.cuda.is_available() checked first, then tools/gpu_quick.py writes
# $OUT/gpu_quick.json after every step (attention kernels, engine runs per memory mode, cancel,
# forced fp32 decode, OOM retry under a cap, reduced self-test). GPU_CHECK_DRY_RUN=1: the same on
# the CPU with the tiny model (make test runs it).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
RESULTS="${OUT:-$PWD/gpu_check_results}"
mkdir -p "$RESULTS"

if [ "${1:-}" = "--quick" ]; then
    PY="${PYTHON:-python3}"
    if [ "${GPU_CHECK_DRY_RUN:-0}" = "1" ]; then
        exec "$PY" tools/gpu_quick.py --dry-run --out "$RESULTS/gpu_quick.json"
    fi
    if ! "$PY" -c "import torch, open_clip, tooncrafter_studio" > /dev/null 2>&1; then
        "$PY" -m venv .venv-quick || { echo "python3 -m venv failed"; exit 2; }
        PY=.venv-quick/bin/python
        "$PY" -m pip install --quiet --upgrade pip
        "$PY" -m pip install --quiet -e ".[tooncrafter]" > "$RESULTS/install.log" 2>&1 \
            || { echo "install failed, see $RESULTS/install.log"; exit 2; }
    fi
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" \
        || { echo "torch.cuda.is_available() is False: no GPU for --quick"; \
             echo '{"steps": {"env": {"ok": false, "error": "torch.cuda.is_available() is False"}}}' \
                 > "$RESULTS/gpu_quick.json"; exit 2; }
    exec timeout 390 "$PY" tools/gpu_quick.py --out "$RESULTS/gpu_quick.json"
fi
CODES="$RESULTS/exit_codes.txt"
: > "$CODES"
PY=.venv/bin/python

record() { echo "$1=$2" >> "$CODES"; echo "== $1: exit $2"; }

if [ "${GPU_CHECK_DRY_RUN:-0}" != "1" ]; then
    make .venv/.installed || { echo "setup failed (make .venv/.installed)"; exit 2; }
    nvidia-smi > "$RESULTS/nvidia-smi.txt" 2>&1
    record nvidia_smi $?

    timeout 150 "$PY" -m pytest -q -p no:cacheprovider -m gpu --junitxml "$RESULTS/pytest_gpu.xml" \
        > "$RESULTS/pytest_gpu.txt" 2>&1
    record pytest_gpu $?

    timeout 180 .venv/bin/tooncrafter-studio doctor --selftest --json \
        > "$RESULTS/selftest.json" 2> "$RESULTS/selftest.log"
    record selftest $?
    timeout 240 "$PY" tools/gpu_check.py generation --out "$RESULTS/generation.json" \
        > "$RESULTS/generation.log" 2>&1
    record generation $?
else
    PY="${PYTHON:-python3}"
    "$PY" tools/gpu_check.py generation --dry-run --modes high --out "$RESULTS/generation.json" \
        > "$RESULTS/generation.log" 2>&1
    record generation $?
fi

"$PY" tools/gpu_check.py summary --out-dir "$RESULTS"
grep -q "=[1-9]" "$CODES" && exit 1
exit 0
