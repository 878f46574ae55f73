#!/usr/bin/env bash
# Trial packing on the lent GPU: aggregate train images/s of yolov8x at the guide's batch 8 with
# K = 1, 2, 4 trainings on one GPU at once (target: K=4 >= 2x K=1; every run keeps batch 8).
#   device tool: run `bash scripts/gpu_pack.sh` with carry [".whl"]; results come back in $OUT.
# It is what `xray-exp sweep --gpus 0 --per-gpu K` does to a GPU: K trainings sharing it. The Python part
# (scripts/bench_workers.py pack) runs on CPU with tiny settings too, and --dry-run prints its commands.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_pack_out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 XDG_CACHE_HOME=/tmp/xdg CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/summary.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/summary.txt"
python3 -c "import torch, ultralytics; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__)" | tee -a "$OUT/summary.txt"
CPUS=$(nproc)

# 512 training images at 640 px, 5 epochs per run: long enough that start-up is a small part of each run.
# Loader workers per run: the machine's cores shared by the largest K (4), so K=1 is not favoured.
log "packing: yolov8x, batch 8, 640 px, 512 train / 128 val, 5 epochs, K = 1 2 4 (cores: $CPUS)"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 5 > "$OUT/gpu_util.csv" 2>/dev/null &
SMI=$!
python3 scripts/bench_workers.py pack --k 1 2 4 --model yolov8x --batch 8 --imgsz 640 --device 0 --epochs 5 \
  --n-train 512 --n-val 128 --loader-workers $(( CPUS / 4 > 1 ? CPUS / 4 : 1 )) --cache ram --work /tmp/gpu_pack \
  2>&1 | tee -a "$OUT/summary.txt"
kill $SMI 2>/dev/null
log done
