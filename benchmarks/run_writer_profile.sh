#!/usr/bin/env bash
# Where an images-CXI run's time goes on one GPU host (issue 20): trained base weights, the images run written
# once to the host's disk and once to /dev/shm (is it the disk or the writers?), with py-spy on every writer
# actor and peak-finding worker, and `top` and each Ray worker's page faults and CPU ticks every 5 s beside each run.
#   OUT=/tmp/prof [GPUS=2] [TARGETS=/dev/shm] [RUNS="infer peaks images"] [PYSPY_DELAY_S=40] [PYSPY=0] \
#       [PYSPY_MATCH="ray::InferenceActor"] [PYSPY_S=25] [PYSPY_ARGS=--native] \
#       bash benchmarks/run_writer_profile.sh \
#       [extra bench_pipeline args...]
# Needs py-spy on PATH; summarise with benchmarks/analyze_pyspy.py.
set -uo pipefail
OUT=${OUT:-benchmarks/results/raw}
WEIGHTS=${WEIGHTS:-/tmp/peaknet-weights/base.pt}
CONFIG=${CONFIG:-examples/configs/gpu-512.yaml}
mkdir -p "$OUT" "$(dirname "$WEIGHTS")"
[ -f "$WEIGHTS" ] || python3 benchmarks/train_synthetic.py --config "$CONFIG" --seconds "${TRAIN_S:-60}" \
  --output "$WEIGHTS" > "$OUT/train-base.json" 2> "$OUT/train-base.log"

watch() {  # prefix: top every 5 s; py-spy on each new writer and peak-finding worker
  local prefix=$1 seen=""
  while sleep 5; do
    top -b -c -n1 -w 250 | head -30 >> "$prefix-top.txt"
    for pid in $(pgrep -f "^ray::"); do  # time, pid, minor faults, user and system ticks, name
      stat=$(cut -d' ' -f2,10,14,15 "/proc/$pid/stat" 2>/dev/null) && echo "$(date +%s.%N) $pid $stat"
    done >> "$prefix-proc.txt"
    [ "${PYSPY:-1}" = 1 ] || continue  # top only: py-spy on many writers loads the host it measures
    for pid in $(pgrep -f "${PYSPY_MATCH:-ray::CxiWriterActor|ray::find_batch_peaks}"); do
      case " $seen " in *" $pid "*) continue ;; esac
      seen="$seen $pid"
      (sleep "${PYSPY_DELAY_S:-0}"  # past the model's compile, into the steady state
       py-spy record --pid "$pid" --rate 100 --nonblocking --threads --format speedscope --duration "${PYSPY_S:-25}" ${PYSPY_ARGS:-} \
        --output "$prefix-pyspy-$pid.json" > "$prefix-pyspy-$pid.log" 2>&1) &
    done
  done
}

GPUS=${GPUS:-1}
read -ra runs <<< "${RUNS:-images}"
for target in ${TARGETS:-/tmp /dev/shm}; do
  name=gpus-$GPUS-$(basename "$target")
  watch "$OUT/$name" &
  watcher=$!
  python3 benchmarks/bench_pipeline.py --config "$CONFIG" --gpus "$GPUS" --runs "${runs[@]}" \
    --seconds "${SECONDS_RUN:-25}" --iters 30 \
    --set model.peaknet.weights="$WEIGHTS" --output-dir "$target" --output "$OUT/$name.json" "$@" \
    > "$OUT/$name.log" 2>&1 || tail -20 "$OUT/$name.log"
  kill $watcher 2>/dev/null
  sleep 2
done
