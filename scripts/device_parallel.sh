#!/usr/bin/env bash
# Issue 15's multi-GPU captures in one command, for when a kind of several H200s is lent
# (written and CPU-checked on 2026-11-29; not yet run on GPUs). From this session's tools:
#   run(kind="nvidia-h200-x2", carry=[".whl"], timeout_s=600,
#       command='bash scripts/device_parallel.sh "$OUT" tp')      # then the same with "train"
# and the same with kind="nvidia-h200-x4" (NPROC, the ranks, follows the GPUs visible; set it in
# the environment to use fewer). Each phase keeps well inside one 10-minute command. Each job is one `torchrun --standalone` of `traceparse capture`, one process per
# GPU (LOCAL_RANK picks it), NCCL; each rank writes its own trace with its rank, world size and
# parallel plan in the metadata. Everything is written under /tmp/tp and comes back as files of
# $OUT (at most 8 come back: hence the tars):
#   $OUT/log.txt           every command, its exit status and wall time, and the job reports
#   $OUT/parallel-<phase>.tar  parallel/<job>/<model>-<tpN|ddpN|fsdpN>-<mode>-seq<N>-rank<R>.pt.trace.json.gz
#   $OUT/reports-<phase>.tar   reports/<job>.json (traceparse.job/1) and <job>.md for every job
# Then, here: tar -xf parallel-tp.tar -C /tmp && cp -r /tmp/parallel/tp-llama fixtures/h200xN-parallel/
# (keep what fits the repo: the TP forwards and one DDP step are the fixtures).
set -u
OUT=${1:-out}
PHASE=${2:-all}   # tp | train | all
NPROC=${NPROC:-$(nvidia-smi -L 2>/dev/null | wc -l)}
# KINDS.md: NVLink multicast stays off (a program using it can take the host's GPUs down).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-} OMP_NUM_THREADS=4
mkdir -p "$OUT" /tmp/tp/parallel /tmp/tp/reports
# analyze needs msgspec: carried as a wheel in .whl/ (see device_capture.sh).
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
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
nvidia-smi topo -m
python3 -c 'import torch, transformers, sys; print(sys.version.split()[0], torch.__version__, transformers.__version__, torch.cuda.device_count(), torch.cuda.nccl.version())'

P=/tmp/tp/parallel
CAP="torchrun --standalone --nproc-per-node $NPROC -m traceparse capture --no-report -q"
# TP forward (transformers' tp_plan "auto": q/k/v/gate/up colwise, o_proj/down_proj rowwise with
# an all-reduce each, lm_head gathered), real widths, 4 blocks, seq 2048, bf16.
if [ "$PHASE" != train ]; then
job tp-llama 150 $CAP --preset llama-3.1-8b --layers 4 --seq-len 2048 --steps 3 --tp "$NPROC" -o $P/tp-llama
job tp-qwen3 150 $CAP --preset qwen3-0.6b --layers 4 --seq-len 2048 --steps 3 --tp "$NPROC" -o $P/tp-qwen3
fi
# A DDP train step (25 MB gradient buckets all-reduced from backward) and the same under FSDP2
# (fully_shard per block: all-gathers in forward and backward, reduce-scatters in backward).
if [ "$PHASE" != tp ]; then
job ddp-llama 150 $CAP --preset llama-3.1-8b --layers 4 --seq-len 2048 --mode train --steps 2 --parallel ddp -o $P/ddp-llama
job ddp-qwen3 120 $CAP --preset qwen3-0.6b --layers 4 --seq-len 2048 --mode train --steps 2 --parallel ddp -o $P/ddp-qwen3
job fsdp-llama 150 $CAP --preset llama-3.1-8b --layers 4 --seq-len 2048 --mode train --steps 2 --parallel fsdp -o $P/fsdp-llama
fi
ls -laR $P

# The many-ranks job report of each: per block compute vs communication and exposed
# communication, collectives' bus bandwidth, each collective's issuing module.
for d in $P/*/; do
  j=$(basename "$d")
  job "report-$j" 60 python3 -m traceparse analyze "$d" -f json -o /tmp/tp/reports/$j.json
  python3 -m traceparse analyze "$d" -f markdown -o /tmp/tp/reports/$j.md && cat /tmp/tp/reports/$j.md
done
tar -C /tmp/tp -cf "$OUT/parallel-$PHASE.tar" parallel
tar -C /tmp/tp -cf "$OUT/reports-$PHASE.tar" reports
ls -la "$OUT"
echo "=== all done"
