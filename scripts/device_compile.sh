#!/usr/bin/env bash
# Issue 16 on one H200: compiled and CUDA-graph captures, eager beside them, in two device calls.
#   bash scripts/device_compile.sh "$OUT" fixtures   # small committed fixtures + the Llama rows
#   bash scripts/device_compile.sh "$OUT" more       # the NemotronH rows
# Writes $OUT/log.txt and the traces into $OUT/<group>/ as each finishes (a call cut short keeps
# what was done). Every capture is time-boxed, so one failure (an uncapturable graph, a compile
# error) costs its box and leaves the others. The fixture captures run three at a time (their
# timings are not quoted); the table's captures run one at a time.
set -u
OUT=${1:-out}
GROUP=${2:-fixtures}
mkdir -p "$OUT/$GROUP"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
exec > >(tee -a "$OUT/log.txt") 2>&1
D=$OUT/$GROUP

DEADLINE=${DEADLINE:-560}  # seconds: later captures are skipped, so the tar at the end gets written
cap() {  # cap NAME SECONDS ARGS...: one capture, time-boxed and timed
  local name=$1 limit=$2; shift 2
  if [ $((SECONDS + limit / 2)) -gt "$DEADLINE" ]; then echo "=== $name: skipped (deadline)"; return; fi
  echo "=== $name: $*"
  local t0; t0=$(date +%s%N)
  timeout "$limit" python3 -m traceparse capture "$@" --name "$name" -o "$D" --no-report --debug
  echo "=== $name: rc=$? wall_s=$(( ($(date +%s%N) - t0) / 1000000000 ))"
}
python3 -c 'import torch, transformers, triton, sys; print(sys.version.split()[0], torch.__version__, transformers.__version__, triton.__version__)'

table() {  # table STEM "PRESET ARGS" SEQ: eager, eager + graphs, compiled, compiled + graphs
  cap $1-fwd$3-eager 60 $2 --seq-len $3 --steps 3
  cap $1-fwd$3-graphs 60 $2 --seq-len $3 --steps 3 --cuda-graphs
  cap $1-fwd$3-compile 150 $2 --seq-len $3 --steps 3 --compile default
  cap $1-fwd$3-compile-graphs 150 $2 --seq-len $3 --steps 3 --compile default --cuda-graphs
}
L="--preset llama-3.1-8b --layers 4"
N="--preset nemotron-nano-9b-v2-8l"
if [ "$GROUP" = fixtures ]; then
  # Fixtures: few layers, real widths; three lanes at once.
  F="--preset llama-3.1-8b --layers 2"
  lanes=()
  { cap llama-2l-fwd-compile-blocks 100 $F --seq-len 215 --steps 2 --compile default
    cap llama-2l-fwd-compile-model 100 $F --seq-len 215 --steps 2 --compile default --compile-scope model; } &
  lanes+=($!)
  { cap llama-2l-train-compile-blocks 150 $F --seq-len 215 --steps 2 --mode train --compile default
    cap llama-2l-decode-graphs 50 $F --seq-len 64 --mode generate --new-tokens 8 --steps 2 --cuda-graphs; } &
  lanes+=($!)
  { cap llama-2l-decode-compile-graphs 100 $F --seq-len 64 --mode generate --new-tokens 8 --steps 2 --compile default --cuda-graphs
    cap llama-2l-fwd-reduce-overhead 100 $F --seq-len 215 --steps 2 --compile reduce-overhead --compile-scope model; } &
  lanes+=($!)
  wait "${lanes[@]}"  # a bare `wait` would also wait for the log's tee, forever
  # The README table, seq 215 and decode: Llama-3.1-8B shape, 4 layers, one capture at a time.
  table llama-4l "$L" 215
  cap llama-4l-decode-eager 40 $L --seq-len 215 --mode generate --new-tokens 16 --steps 2
  cap llama-4l-decode-graphs 50 $L --seq-len 215 --mode generate --new-tokens 16 --steps 2 --cuda-graphs
  cap llama-4l-decode-compile-graphs 90 $L --seq-len 215 --mode generate --new-tokens 16 --steps 2 --compile default --cuda-graphs
  table llama-4l "$L" 4096
elif [ "$GROUP" = redo ]; then
  # After run 2: graphs now see transformers' capture path in warm-up; per-layer recompiles allowed.
  lanes=()
  cap llama-2l-decode-graphs 50 --preset llama-3.1-8b --layers 2 --seq-len 64 --mode generate --new-tokens 8 --steps 2 --cuda-graphs &
  lanes+=($!)
  cap llama-2l-decode-compile-graphs 100 --preset llama-3.1-8b --layers 2 --seq-len 64 --mode generate --new-tokens 8 --steps 2 --compile default --cuda-graphs &
  lanes+=($!)
  wait "${lanes[@]}"
  table llama-4l "$L" 215
  cap llama-4l-decode-eager 40 $L --seq-len 215 --mode generate --new-tokens 16 --steps 2
  cap llama-4l-decode-graphs 50 $L --seq-len 215 --mode generate --new-tokens 16 --steps 2 --cuda-graphs
  cap llama-4l-decode-compile-graphs 90 $L --seq-len 215 --mode generate --new-tokens 16 --steps 2 --compile default --cuda-graphs
  table llama-4l "$L" 4096
  cap nemotron-8l-fwd215-eager 60 $N --seq-len 215 --steps 3
  cap nemotron-8l-fwd215-compile 150 $N --seq-len 215 --steps 3 --compile default
  cap nemotron-8l-decode-eager 60 $N --seq-len 215 --mode generate --new-tokens 16 --steps 2
  cap nemotron-8l-fwd215-compile-graphs 150 $N --seq-len 215 --steps 3 --compile default --cuda-graphs
  cap nemotron-8l-decode-compile 150 $N --seq-len 215 --mode generate --new-tokens 16 --steps 2 --compile default
elif [ "$GROUP" = last ]; then
  # The NemotronH rows the third call had no time for.
  cap nemotron-8l-fwd215-graphs 40 $N --seq-len 215 --steps 3 --cuda-graphs
  cap nemotron-8l-fwd4096-eager 40 $N --seq-len 4096 --steps 2
  cap nemotron-8l-fwd4096-compile 80 $N --seq-len 4096 --steps 2 --compile default
  cap nemotron-8l-fwd4096-compile-graphs 80 $N --seq-len 4096 --steps 2 --compile default --cuda-graphs
else
  table nemotron-8l "$N" 215
  cap nemotron-8l-decode-eager 60 $N --seq-len 215 --mode generate --new-tokens 16 --steps 2
  cap nemotron-8l-decode-compile 150 $N --seq-len 215 --mode generate --new-tokens 16 --steps 2 --compile default
  table nemotron-8l "$N" 4096
fi
ls -la $D
# The device returns a limited number of files: one tar of all the traces.
tar -C "$OUT" -cf "$OUT/$GROUP.tar" "$GROUP" && rm -rf "$D"
echo "=== all done"
