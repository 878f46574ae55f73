# xray_exp — `make demo` and `make test` are the two set-up commands (README).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: install demo test test-fast bench-overhead bench-synth bench-learnability bench-merge bench-pruning bench-alignment bench-workers claims-demo data-merged clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# A real Optuna sweep on CPU (synthetic data, 3 trials of up to 6 epochs, median pruning), then the comparison
# table. Re-running resumes the finished study (no new training) and prints the table again.
# One console line per finished trial (xray-exp sweep); the sweep's full log is outputs/sweeps/demo/worker-0.log,
# without Ultralytics' per-batch bars (YOLO_VERBOSE=False).
demo: install
	YOLO_VERBOSE=False $(PY) -m xray_exp.cli sweep --workers 1 experiment=demo search=demo
	$(PY) -m xray_exp.cli compare outputs/sweeps/demo --plot outputs/sweeps/demo/plots

# The guide's claims measured with seeds on CPU (docs/claims.md): 8 claims x 3 seeds of yolov8n on synthetic scans
# (240 train / 80 val at 96 px), the guide's 100/200 epochs scaled to 10/20, two training processes at once;
# then one row per claim against the old column (Welch 95 % intervals) and the forest plot. Re-running resumes.
CLAIMS_DEMO = outputs/claims/demo
claims-demo: install
	YOLO_VERBOSE=False $(PY) -m xray_exp.cli claims --seeds 3 --workers 2 --out $(CLAIMS_DEMO) \
	  --claims baseline,optimizer,batch,augmentation,dropout,schedule,path_a,labels_transposed \
	  dataset=synthetic dataset.data=data/synthetic_xray_claims/data.yaml dataset.n_train=240 dataset.n_val=80 \
	  dataset.imgsz=96 model=yolov8n imgsz=96 device=cpu workers=0 augmentation.close_mosaic=2 \
	  +ultralytics.nbs=16 +ultralytics.plots=false '++claim.epochs=[10,20]' '++claim.patience=[5,8]'
	$(PY) -m xray_exp.cli compare $(CLAIMS_DEMO) --by claim --markdown $(CLAIMS_DEMO)/claims.md \
	  --plot $(CLAIMS_DEMO)/plots

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench-overhead: install
	$(PY) scripts/bench_overhead.py

bench-synth: install
	$(PY) scripts/bench_synth.py --n 1000 --imgsz 640 --repeats 3

bench-learnability: install
	$(PY) scripts/bench_learnability.py --n-train 600 --n-val 150 --imgsz 160 --epochs 30

bench-merge: install
	$(PY) scripts/bench_merge.py

bench-pruning: install
	$(PY) scripts/bench_pruning.py --trials 16 --startup 2 --warmup 1

bench-workers: install
	$(PY) scripts/bench_workers.py sweep --trials 8 --epochs 2 --workers 1 2

bench-alignment: install
	$(PY) scripts/bench_alignment.py --seeds 5 --images 200 --time-images 1000

data-merged: install
	$(PY) -m xray_exp.cli data merge data/luggage_xray_yolo/data.yaml data/cargoxray_yolo/data.yaml --out data/merged_xray_yolo --yes

clean:
	rm -rf outputs/runs outputs/multirun outputs/sweeps
