#!/usr/bin/env bash
# Issue 10's checks on a GPU machine, in one go (about 5-8 minutes on an H100/H200):
# the GPU tests (they fail instead of skipping without CUDA), then the mixed real
# workload (both test sets replicated to 20,000 boxes): the reference-style chain,
# run --exact and run (fast, --decoder auto = gpu) side by side, run on 1/10 of it
# (peak host memory flat), then the hybrid decoder.
#   PYTHON=.venv/bin/python bash benchmarks/gpu_checks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
MEGACLASSIFIER_REQUIRE_GPU=1 "$PYTHON" -m pytest -q tests/test_gpu.py tests/test_run_fast.py
common=(--device cuda --precision fp16 --sets cameratrap,lila31 --boxes 20000 --batch-size 256 --num-workers 15
    --backends torch)
"$PYTHON" benchmarks/bench_run.py "${common[@]}" --growth 10
"$PYTHON" benchmarks/bench_run.py "${common[@]}" --growth 0 --skip-chain --skip-exact --decoder hybrid
