#!/usr/bin/env bash
# Everything the H200 session needs, in one command (device time is scarce; one start, one run).
# Run from the repo root on the GPU box:  bash scripts/device_capture.sh "$OUT"
# Writes: log.txt, bench_capture.json, fixtures.tar, and the full-size traces.
set -u
OUT=${1:-out}
PHASE=${2:-all}   # capture | bench | all
mkdir -p "$OUT" /tmp/tp/fixtures /tmp/tp/big
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
# analyze (which capture runs at the end) needs msgspec: carried as a wheel in .whl/.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
LOG="$OUT/log.txt"
exec > >(tee -a "$LOG") 2>&1

job() {  # job NAME SECONDS CMD...: time-boxed, timed, never stops the script
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*"
  local t0; t0=$(date +%s%N)
  timeout "$limit" "$@"; local rc=$?
  echo "=== $name: rc=$rc wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c 'import torch, transformers, sys; print(sys.version.split()[0], torch.__version__, transformers.__version__)'

F=/tmp/tp/fixtures B=/tmp/tp/big
if [ "$PHASE" != bench ]; then
# Fixtures (small, committed): real widths, few layers.
job fx-nemotron-8l 120 python3 -m traceparse capture --preset nemotron-nano-9b-v2-8l --seq-len 215 --steps 3 -o $F --no-report
job fx-llama-4l 90 python3 -m traceparse capture --preset llama-3.1-8b --layers 4 --seq-len 215 --steps 3 -o $F --no-report
job fx-qwen-train 90 python3 -m traceparse capture --preset qwen3-0.6b --layers 4 --mode train --seq-len 215 --steps 2 -o $F --no-report
job fx-nemotron-train 120 python3 -m traceparse capture --preset nemotron-nano-9b-v2-8l --mode train --seq-len 215 --steps 1 -o $F --no-report
job fx-qwen-generate 90 python3 -m traceparse capture --preset qwen3-0.6b --layers 4 --mode generate --seq-len 64 --new-tokens 8 --steps 2 -o $F --no-report
job fx-nemotron-generate 120 python3 -m traceparse capture --preset nemotron-nano-9b-v2-8l --mode generate --seq-len 64 --new-tokens 8 --steps 1 -o $F --no-report


tar -C /tmp/tp -cf "$OUT/fixtures.tar" fixtures
# The full models of the issue (closing-note numbers; too big to commit whole).
job nemotron-9b-215 200 python3 -m traceparse capture --preset nemotron-nano-9b-v2 --seq-len 215 --steps 3 -o $B
job llama-8b-215 120 python3 -m traceparse capture --preset llama-3.1-8b --seq-len 215 --steps 3 -o $B
job llama-8b-4096 150 python3 -m traceparse capture --preset llama-3.1-8b --seq-len 4096 --steps 3 -o $B --no-report
ls -la $F $B
for f in $B/*.gz; do cp "$f" "$OUT/"; done
fi
if [ "$PHASE" != capture ]; then
job bench-capture 300 python3 scripts/bench_capture.py --presets nemotron-nano-9b-v2 llama-3.1-8b qwen3-0.6b \
  --seq-len 215 --runs 5 --json "$OUT/bench_capture.json"
job bench-capture-4096 120 python3 scripts/bench_capture.py --presets llama-3.1-8b --seq-len 4096 --runs 3 \
  --json "$OUT/bench_capture_4096.json"
fi
echo "=== all done"
