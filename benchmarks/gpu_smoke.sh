#!/usr/bin/env bash
# One GPU, at most ~5 minutes, nothing downloaded: GRPO and SGCD for 2 updates each with bf16
# mixed precision, with FSDP2 on one process (configs/accelerate/fsdp2-8gpu.yaml, 1 process) and
# with a LoRA adapter, on a tiny model built locally; prints step times and peak GPU memory.
# Needs the project installed (`make setup`, or torch + transformers + accelerate + peft and the
# project's own dependencies as a GPU host has them).
#   bash benchmarks/gpu_smoke.sh [OUT_DIR]        (default runs/gpu-smoke)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec timeout 600 "$PY" benchmarks/gpu_smoke.py "${1:-runs/gpu-smoke}"
