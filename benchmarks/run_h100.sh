#!/usr/bin/env bash
# The issue-8 measurements on one GPU host, in parts that each fit one 10-minute device call.
#   bash benchmarks/run_h100.sh e2e-512|e2e-1920|memory|large|sweep|host|model-variants|model-fused|model-fp8|
#       model-tma|model-dwconv|model-groups|model-targets|model-bifpn|model-stem|model-head|model-gelu|model-bifpn-bias|
#       model-accuracy|model-profile
#   (results under $OUT, default benchmarks/results/raw)
# On the lent device only a few files of $OUT come back per call: run with OUT elsewhere and tar it into $OUT.
# Needs peaknet and the ray CLI on PATH/PYTHONPATH.
# Weights: a minute of training on synthetic frames (train_synthetic.py), kept in $WEIGHTS between parts.
set -uo pipefail
OUT=${OUT:-benchmarks/results/raw}
WEIGHTS=${WEIGHTS:-/tmp/peaknet-weights}
mkdir -p "$OUT" "$WEIGHTS"
C512=${C512:-examples/configs/gpu-512.yaml}
C1920=examples/configs/gpu-1920.yaml

weights() {  # preset -> path, training once per machine
  local preset=$1 path=$WEIGHTS/$1.pt
  if [ ! -f "$path" ]; then
    python3 benchmarks/train_synthetic.py --config $C512 --set model.peaknet.preset="$preset" \
      --seconds "${TRAIN_S:-50}" --output "$path" > "$OUT/train-$preset.json" 2> "$OUT/train-$preset.log"
  fi
  echo "$path"
}

bench() {  # name config [bench_pipeline args...]
  local name=$1 config=$2
  shift 2
  python3 benchmarks/bench_pipeline.py --config "$config" --output "$OUT/$name.json" "$@" > "$OUT/$name.log" 2>&1 \
    || { echo "FAILED $name"; tail -20 "$OUT/$name.log"; }
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[1], r['model_only']['frames_per_s'], \
    {k: (v['end_to_end_frames_per_s'], v['ratio_to_model_only'], v['limited_by']) for k, v in r['runs'].items()})" \
    "$OUT/$name.json" 2>/dev/null
}

watch_host() {  # prefix: top every 5 s; py-spy on each new inference actor until it exits
  local prefix=$1 seen=""
  while sleep 5; do
    top -b -c -n1 -w 300 | head -40 >> "$prefix-top.txt"
    for pid in $(pgrep -f "ray::InferenceActor"); do
      case " $seen " in *" $pid "*) continue ;; esac
      seen="$seen $pid"
      if command -v py-spy > /dev/null; then
        py-spy record --pid "$pid" --rate 200 --nonblocking --threads --format speedscope \
          --output "$prefix-pyspy-$pid.json" > "$prefix-pyspy-$pid.log" 2>&1 &
        py-spy record --pid "$pid" --rate 200 --nonblocking --gil --format speedscope \
          --output "$prefix-pyspy-gil-$pid.json" > "$prefix-pyspy-gil-$pid.log" 2>&1 &
      fi
    done
  done
}

watched() {  # prefix command...: run the command with watch_host sampling beside it
  local prefix=$1
  shift
  watch_host "$OUT/$prefix" &
  local watcher=$!
  "$@"
  kill $watcher 2>/dev/null
  sleep 1
}

case ${1:?part} in
  e2e-512)  # base at 512 and 1920 (same weights: the model is fully convolutional), buffers 1 and 3
    W=$(weights base)
    cat "$OUT/train-base.json"
    bench h100-e2e-base-512 $C512 --set model.peaknet.weights="$W" --seconds 12
    bench h100-e2e-base-1920 $C1920 --set model.peaknet.weights="$W" --seconds 12 --iters 20
    for n in 1 3; do
      bench "h100-sweep-buffers-$n" $C512 --set model.peaknet.weights="$W" --set inference.num_buffers=$n \
        --runs infer --seconds 8 --iters 30
    done
    ;;
  memory)  # >= 5 minutes, peaks-only CXI, resource samples, a torch trace of 12 batches, and what
           # `ray memory` says holds the object store near the end (so it runs on a started Ray head)
    W=$(weights base)
    rm -rf /tmp/peaknet-mem && mkdir -p /tmp/peaknet-mem
    ray start --head --num-cpus="${NUM_CPUS:-$(nproc)}" --include-dashboard=false --disable-usage-stats > /dev/null
    python3 -m peaknet_pipeline.cli run --config $C512 --set ray.address=auto --set model.peaknet.weights="$W" \
      --set producer.total_frames=null --set lifecycle.max_run_s="${MEMORY_S:-320}" \
      --set writer.store_images=false --set writer.min_num_peak=0 --set writer.output_dir=/tmp/peaknet-mem \
      --set output.samples="$OUT/h100-memory-samples.jsonl" --set output.samples_interval_s=5 \
      --enable-profiling --set profiling.tool=torch --set profiling.torch_trace_dir=/tmp/peaknet-mem/traces \
      --set profiling.trace_skip_batches=200 --set profiling.trace_batches=12 \
      --report "$OUT/h100-memory-report.json" > "$OUT/memory.log" 2>&1 &
    run=$!
    sleep $(( ${MEMORY_S:-320} - 15 ))
    ray memory --group-by STACK_TRACE --units MB > "$OUT/h100-ray-memory.txt" 2>&1
    wait $run || tail -30 "$OUT/memory.log"
    ray stop --force > /dev/null
    python3 benchmarks/analyze_samples.py "$OUT/h100-memory-samples.jsonl" --warmup-s 60 \
      --output "$OUT/h100-memory-summary.json" | head -5
    trace=$(ls /tmp/peaknet-mem/traces/*.trace.json | head -1)
    python3 benchmarks/analyze_trace.py "$trace" --output "$OUT/h100-trace-summary.json"
    gzip -c "$trace" > "$OUT/h100-infer-trace.json.gz"
    ;;
  e2e-1920)  # base at 1x1920x1920 (the 512 weights: the model is fully convolutional)
    W=$(weights base)
    bench h100-e2e-base-1920 $C1920 --set model.peaknet.weights="$W" --seconds 12 --iters 20
    ;;
  large)
    W673=$(weights 673m)
    cat "$OUT/train-673m.json"
    bench h100-e2e-673m-512 $C512 --set model.peaknet.preset=673m --set model.peaknet.weights="$W673" --seconds 10
    ;;
  host)  # issue 8: what holds the inference actor back once peak finding runs beside it, with compile
          # default, then the same under reduce-overhead (the GPU configs' default since)
    W=$(weights base)
    watched host-default bench h100-e2e-base-512-host-default $C512 --set model.peaknet.weights="$W" \
      --set inference.compile_mode=default --runs infer peaks --seconds 20
    watched host-reduce-overhead bench h100-e2e-base-512-reduce-overhead $C512 --set model.peaknet.weights="$W" \
      --set inference.compile_mode=reduce-overhead --seconds 20
    ;;
  model-variants)  # issue 4, next: the committed model's profile, then candidates against it
    python3 benchmarks/profile_model.py --config $C512 --set inference.compile_mode=default --top 60 \
      --output "$OUT/h100-profile-base-512.json" | head -30
    timeout 480 python3 benchmarks/bench_model.py --iters 30 --output "$OUT/h100-model-variants.jsonl" --only \
      base-512-b32-default base-512-b32-default-dwtaps base-512-b32-default-freezing \
      base-512-b32-default-autotune-gemm   # last: its compile may be long; rows are written as they finish
    ;;
  model-fused)  # issue 4: the fused ConvNeXt-block kernels: GPU tests, per kernel against PyTorch (launch
                # settings swept), whole model
    python3 -m pytest -q tests/test_fused_kernels.py > "$OUT/h100-pytest-fused-kernels.log" 2>&1
    tail -1 "$OUT/h100-pytest-fused-kernels.log"
    python3 benchmarks/bench_kernels.py --output "$OUT/h100-kernels-base-512.json" > "$OUT/kernels.log" 2>&1
    python3 benchmarks/bench_model.py --iters 30 --output "$OUT/h100-model-fused.jsonl" --only \
      base-512-b32-reduce-overhead-fused-gemm \
      base-512-b32-reduce-overhead-fused-none > "$OUT/model.log" 2>&1
    python3 benchmarks/bench_model.py --iters 20 --output "$OUT/h100-model-fused-shapes.jsonl" --only \
      base-1920-b8-reduce-overhead 673m-512-b32-reduce-overhead-fused-gemm >> "$OUT/model.log" 2>&1
    ;;
  model-fp8)  # issue 23: 673m with precision fp8 by the shipped rule (gpu-512-673m.yaml's b64, and b32), against bf16
    python3 benchmarks/bench_model.py --iters 30 --output "$OUT/h100-model-fp8-default.jsonl" --only \
      673m-512-b64-reduce-overhead 673m-512-b64-reduce-overhead-fp8-default 673m-512-b32-reduce-overhead \
      673m-512-b32-reduce-overhead-fp8-default > "$OUT/model.log" 2>&1
    ;;
  model-tma)  # issue 23: the GEMMs by TMA, per kernel, then compiled (launched inline from traced code)
    python3 -m pytest -q tests/test_fused_kernels.py > "$OUT/pytest-fused-kernels.log" 2>&1
    tail -1 "$OUT/pytest-fused-kernels.log"
    python3 benchmarks/bench_gemm_tma.py --output "$OUT/kernels-base-512-b64-tma.json" | tail -4
    timeout 420 python3 benchmarks/ab_gemm_settings.py --arms loads tma-inline --rounds 1 --iters 60 \
      --output "$OUT/model-gemm-tma.json"
    ;;
  model-dwconv)  # issue 23: the depthwise 7x7 kernel in the whole model: base 512 all against gemm (alternating in
                 # one process), 1920 all against gemm, 673m dwconv against none in bf16 and fp8 (the kernel
                 # alone: bench_dwconv.py)
    python3 -m pytest -q tests/test_dwconv_kernel.py tests/test_fused_kernels.py > "$OUT/pytest-kernels.log" 2>&1
    tail -1 "$OUT/pytest-kernels.log"
    timeout 300 python3 benchmarks/ab_model_variants.py --variants fused-gemm fused-all --rounds 2 \
      --iters 60 --output "$OUT/ab-dwconv.json" 2>&1 | grep "^{'variant"
    python3 benchmarks/bench_model.py --iters 20 --output "$OUT/model-dwconv.jsonl" --only \
      base-1920-b8-reduce-overhead base-1920-b8-reduce-overhead-fused-gemm 673m-512-b64-reduce-overhead \
      673m-512-b64-reduce-overhead-fused-dwconv 673m-512-b64-reduce-overhead-fp8-default \
      673m-512-b64-reduce-overhead-fp8-default-fused-dwconv > "$OUT/model-dwconv.log" 2>&1
    ;;
  model-groups)  # issue 23: where the time goes with the depthwise kernel: per layer group at 512 (the default,
                 # all), and per kernel at 1920 with all and with gemm
    timeout 330 python3 benchmarks/profile_groups.py --config $C512 --iters 30 --output "$OUT/groups-base-512-all.json" \
      > "$OUT/groups.log" 2>&1
    for mode in all gemm; do
      timeout 120 python3 benchmarks/profile_model.py --config $C1920 --set model.peaknet.fused_kernels=$mode \
        --iters 10 --top 30 --output "$OUT/profile-base-1920-$mode.json" > "$OUT/profile-1920-$mode.log" 2>&1
    done
    ;;
  model-targets)  # issue 23's three targets, model alone at the configs' defaults; base 1920 with each GELU form
    timeout 330 python3 benchmarks/bench_model.py --iters 30 --output "$OUT/model-targets.jsonl" \
      --only base-512-b64-reduce-overhead base-1920-b8-reduce-overhead 673m-512-b64-reduce-overhead-fp8-default
    timeout 240 python3 benchmarks/ab_model_variants.py --config $C1920 --variants model.peaknet.mlp_gelu=exact plain \
      --rounds 1 --iters 10 --output "$OUT/ab-1920-gelu.json" > "$OUT/ab-1920-gelu.log" 2>&1
    ;;
  model-bifpn)  # issue 23: the BiFPN step's kernel: its tests on the GPU, per step against inductor's ops, and the
                # whole model with it (fused_kernels all) against without (blocks), alternating in one process
    timeout 200 python3 -m pytest -q tests/test_bifpn_kernel.py tests/test_fused_kernels.py -k bifpn > "$OUT/pytest-bifpn.log" 2>&1
    tail -1 "$OUT/pytest-bifpn.log"
    timeout 200 python3 benchmarks/bench_bifpn.py --output "$OUT/kernels-base-512-b64-bifpn.json"
    timeout 240 python3 benchmarks/ab_model_variants.py --variants fused-all fused-blocks --rounds 2 --iters 60 \
      --output "$OUT/ab-bifpn-kernel.json" 2>&1 | grep "^{'variant"
    ;;
  model-stem)  # issue 23: the stem's kernel: its tests on the GPU (and the compiled model's with mode all), per
               # kernel against inductor's ops, the whole model with it against without, alternating in one process
    timeout 200 python3 -m pytest -q tests/test_stem_kernel.py \
      "tests/test_fused_kernels.py::test_compiled_model_with_fused_blocks_agrees_with_the_plain_model_in_bf16[tanh-all]" \
      > "$OUT/pytest-stem.log" 2>&1
    tail -1 "$OUT/pytest-stem.log"
    timeout 120 python3 benchmarks/bench_stem.py --output "$OUT/kernels-base-b64-stem.json" > "$OUT/bench-stem.log" 2>&1
    grep -v Warning "$OUT/bench-stem.log" | head -3
    timeout 260 python3 benchmarks/ab_model_variants.py --variants fused-all stem-cudnn --rounds 2 --iters 60 \
      --output "$OUT/ab-stem.json" > "$OUT/ab-stem.log" 2>&1
    grep "^{'variant" "$OUT/ab-stem.log"
    ;;
  model-bifpn-bias)  # issue 23: the adapters' conv bias added by the BiFPN kernel: its GPU tests, then the whole
                     # model with it against without, alternating in one process
    timeout 150 python3 -m pytest -q tests/test_bifpn_kernel.py > "$OUT/pytest-bifpn-bias.log" 2>&1
    tail -1 "$OUT/pytest-bifpn-bias.log"
    timeout 380 python3 benchmarks/ab_model_variants.py --variants fused-all bifpn-bias --rounds "${ROUNDS:-2}" \
      --iters 60 --output "$OUT/ab-bifpn-bias.json" > "$OUT/ab-bifpn-bias.log" 2>&1
    grep "^{'variant" "$OUT/ab-bifpn-bias.log"
    ;;
  model-gelu)  # issue 23: pwconv1 by our GEMM kernel (GELU and GRN's sums in its epilogue, by TMA on Hopper), in the
               # tanh form (tanh.approx) and exact, against cuBLASLt's bias-GELU epilogue and inductor's pass for the
               # sums (the default): the kernels' GPU tests, then the three alternating in one process
    timeout 120 python3 -m pytest -q tests/test_fused_kernels.py -k "tanh or gelu" > "$OUT/pytest-gelu.log" 2>&1
    tail -1 "$OUT/pytest-gelu.log"
    timeout 420 python3 benchmarks/ab_model_variants.py --variants fused-all tanh-kernel model.peaknet.mlp_gelu=exact \
      --rounds "${ROUNDS:-1}" --iters 60 --output "$OUT/ab-gelu-kernel.json" > "$OUT/ab-gelu-kernel.log" 2>&1
    grep "^{'variant" "$OUT/ab-gelu-kernel.log"
    ;;
  model-head)  # issue 23: the head's GroupNorm-GELU-projection kernels: their tests on the GPU (and the compiled
               # model's with mode all), the whole model with them (all four laterals) against without,
               # alternating in one process
    timeout 150 python3 -m pytest -q tests/test_head_kernel.py \
      "tests/test_fused_kernels.py::test_compiled_model_with_fused_blocks_agrees_with_the_plain_model_in_bf16[tanh-all]" \
      > "$OUT/pytest-head.log" 2>&1
    tail -1 "$OUT/pytest-head.log"
    timeout 380 python3 benchmarks/ab_model_variants.py --variants fused-all head-inductor \
      --rounds "${ROUNDS:-2}" \
      --iters 60 --output "$OUT/ab-head.json" > "$OUT/ab-head.log" 2>&1
    grep "^{'variant" "$OUT/ab-head.log"
    ;;
  model-accuracy)  # issue 23's gate at gpu-512's defaults (its compile mode, CUDA graphs, every kernel of mode
                   # all): weights trained on synthetic frames, held-out frames with planted peaks
    W=$(weights base)
    timeout 400 python3 benchmarks/bench_accuracy.py --config $C512 --set model.peaknet.weights="$W" --frames 512 \
      --modes bf16 fp32 --output "$OUT/accuracy-base-512.json" > "$OUT/accuracy.log" 2>&1
    tail -5 "$OUT/accuracy.log"
    ;;
  model-profile)  # issue 4: GPU time per kernel kind for base at 512 (compiled) and eager
    python3 benchmarks/profile_model.py --config $C512 --output "$OUT/h100-profile-base-512.json" | head -30
    python3 benchmarks/profile_model.py --config $C512 --set inference.compile_mode=none \
      --output "$OUT/h100-profile-base-512-eager.json" | head -30
    ;;
  sweep)  # one knob at a time from the gpu-512 defaults, inference stage only (b) unless it is a writer knob
    W=$(weights base)
    for knob in inference.num_buffers=1 inference.num_buffers=3 data.batch_size=16 data.batch_size=64 \
                queues.num_shards=1 producer.num_producers=2; do
      bench "h100-sweep-${knob//[.=]/-}" $C512 --set model.peaknet.weights="$W" --set "$knob" \
        --runs infer --seconds 10 --iters 30
    done
    bench h100-sweep-peaks-pending-2 $C512 --set model.peaknet.weights="$W" --set peaks.max_pending_tasks=2 \
      --runs peaks --seconds 10 --iters 30
    python3 benchmarks/bench_queue.py --batches 300 --output "$OUT/h100-queue-refs-vs-values.json" > /dev/null 2>&1
    cat "$OUT/h100-queue-refs-vs-values.json"
    ;;
esac
