#!/usr/bin/env bash
# GPU check on the lent device machine (H100/H200): real xray_exp trainings on CUDA.
#   device tool: run `bash scripts/gpu_check.sh` with carry [".whl"]; results come back in $OUT.
# Measures the guide's Path A setting (yolov8x, batch 8, AdamW, 640 px) images/s and epoch time,
# checks that AMP's self-check leaves nothing in the working directory, runs a short pruned sweep on
# the GPU, and the xray_exp-vs-plain-Ultralytics overhead benchmark.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check_out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 XDG_CACHE_HOME=/tmp/xdg
log() { echo "== $(date +%T) $*" | tee -a "$OUT/summary.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/summary.txt"
python3 -c "import torch, ultralytics; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__)" | tee -a "$OUT/summary.txt"

log "synthetic data 640 px: 512 train / 128 val"
python3 -m xray_exp.cli data synth --out /tmp/synth640 --n-train 512 --n-val 128 --imgsz 640 --seed 0 2>&1 | tail -2
DATA="dataset=synthetic dataset.data=/tmp/synth640/data.yaml dataset.n_train=512 dataset.n_val=128 dataset.imgsz=640"

for batch in 8 32; do
  log "Path A, yolov8x, batch $batch, 3 epochs, cache=ram"
  python3 -m xray_exp experiment=path_a $DATA model=yolov8x epochs=3 batch=$batch device=0 workers=12 cache=ram \
    augmentation.close_mosaic=1 monitor.gates=[] hydra.run.dir=/tmp/gpu_runs/path_a_b$batch > "$OUT/path_a_b$batch.log" 2>&1
  echo "exit $?" | tee -a "$OUT/summary.txt"
  python3 -c "import json; m = json.load(open('/tmp/gpu_runs/path_a_b$batch/metrics.json')); print({k: m.get(k) for k in ('value', 'epochs_completed', 'stop_reason', 'wall_s', 'train_images_per_s', 'resolved', 'ignored')})" | tee -a "$OUT/summary.txt"
done
log "working directory after CUDA runs (AMP self-check must not leave ./weights):"
ls -a | tr '\n' ' ' | tee -a "$OUT/summary.txt"; echo | tee -a "$OUT/summary.txt"
test ! -e weights && echo "OK: no ./weights" | tee -a "$OUT/summary.txt" || echo "FAIL: ./weights exists" | tee -a "$OUT/summary.txt"

log "pruned sweep on GPU: search=path_a, yolov8n, 6 trials x 8 epochs, median pruner"
python3 -m xray_exp -m search=path_a $DATA model=yolov8n epochs=8 batch=32 imgsz=320 device=0 workers=8 cache=ram \
  augmentation.close_mosaic=2 monitor.gates=[] monitor.scale_to_epochs=true hydra.sweeper.n_trials=6 \
  hydra.sweeper.study_name=gpu hydra.sweep.dir=/tmp/gpu_sweep > "$OUT/sweep.log" 2>&1
echo "exit $?" | tee -a "$OUT/summary.txt"
cp /tmp/gpu_sweep/trials.csv "$OUT/trials.csv" 2>/dev/null
python3 -m xray_exp.cli compare /tmp/gpu_sweep /tmp/gpu_runs 2>&1 | tee -a "$OUT/summary.txt"

log "overhead: xray_exp vs plain Ultralytics, yolov8n 320 px, 3 pairs"
python3 scripts/bench_overhead.py --pairs 3 --epochs 3 --n-train 512 --imgsz 320 --device 0 2>&1 | tee -a "$OUT/summary.txt"
log done
