#!/usr/bin/env bash
# One prepared GPU check (for a session lent a device): build, test, calibrate, and time against the
# plain reference loop, all in one call. Prints figures to paste into an issue note; writes them to $OUT.
# Usage on the device machine:  bash benchmarks/gpu_check.sh   (about 8 minutes on an H200)
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export SCALEBENCH_HOME="$OUT/home"
python -m pip install -q -e '.[dev]' 2>&1 | tail -1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
echo "== GPU tests"; timeout 300 python -m pytest -q -m gpu 2>&1 | tail -5 | tee "$OUT/pytest-gpu.txt"
echo "== calibrate"; timeout 120 scalebench env --calibrate | tee "$OUT/env.txt"
echo "== trainer vs plain loop (DESIGN.md shapes, vocab 50304, seq 1024; eager, then compiled)"
timeout 300 python benchmarks/train_throughput.py --steps 20 2>&1 | grep -v USDT | tee "$OUT/train_throughput.txt"
timeout 300 python benchmarks/train_throughput.py --steps 20 --compile \
  2>&1 | grep -v USDT | tee "$OUT/train_throughput_compiled.txt"
echo "== profiling overhead"; timeout 300 python benchmarks/profiling_overhead.py 2>&1 | tee "$OUT/profiling_overhead.txt"
echo "== profile 124m"; timeout 300 scalebench profile --family gpt --size 124m --batch 32 --steps 20 2>&1 \
  | grep -v USDT | tee "$OUT/profile-124m.txt"
