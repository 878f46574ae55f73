"""Scale-out benchmarks (not in CI). Everything they write goes under --work (default /tmp), nothing into the repo.

`sweep` (make bench-workers): the same seeded 8-trial tiny sweep with `xray-exp sweep --workers 1` and with
`--workers 2`, on CPU; prints the wall times and their ratio as a markdown table for docs/benchmarks.md.

    python scripts/bench_workers.py sweep --trials 8 --epochs 2

`pack` (scripts/gpu_pack.sh): K trainings started together on one device, for each K; prints every
run's train images/s (xray_exp's own measure, validation excluded), their sum, and images trained per
second of wall time over the whole batch. On a GPU: yolov8x at the guide's batch 8, every run keeping
batch 8. `--dry-run` prints the commands only; tiny settings run it on CPU.

    python scripts/bench_workers.py pack --k 1 2 4 --model yolov8x --batch 8 --imgsz 640 --device 0
    python scripts/bench_workers.py pack --k 1 2 --model yolov8n --batch 16 --imgsz 64 --device cpu --epochs 1 --n-train 32 --n-val 16
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from xray_exp.run.run_folder import METRICS_FILE
from xray_exp.study import TRIALS_FILE

ROOT = Path(__file__).resolve().parent.parent


def data_args(args: argparse.Namespace) -> list[str]:
    """Overrides for a synthetic dataset of the asked size, built here first so no timing includes it."""
    folder = args.work / f"data_{args.n_train}_{args.n_val}_{args.imgsz}"
    if not args.dry_run:
        from xray_exp.data.synthetic import ensure_dataset

        ensure_dataset(folder, args.n_train, args.n_val, 0, args.imgsz, seed=0)
    return ["dataset=synthetic", f"dataset.data={folder / 'data.yaml'}", f"dataset.n_train={args.n_train}",
            f"dataset.n_val={args.n_val}", "dataset.n_test=0", f"dataset.imgsz={args.imgsz}", "dataset.seed=0",
            f"imgsz={args.imgsz}"]


def sweep(args: argparse.Namespace) -> None:
    common = ["search=path_a", "experiment=demo", *data_args(args), "model=yolov8n", f"epochs={args.epochs}",
              "batch=16", "device=cpu", "workers=0", "augmentation.close_mosaic=0", "hydra/sweeper/pruner=none",
              f"hydra.sweeper.n_trials={args.trials}"]
    rows = []
    for workers in args.workers:
        name = f"workers_{workers}_{int(time.time())}"
        cmd = [sys.executable, "-m", "xray_exp.cli", "sweep", "--workers", str(workers), *common,
               f"hydra.sweep.dir={args.work / name}", f"hydra.sweeper.study_name={name}"]
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"{name} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
        trials = list(csv.DictReader((args.work / name / TRIALS_FILE).open()))
        rows.append((workers, sum(t["state"] == "COMPLETE" for t in trials), wall))
    print(f"| workers | trials COMPLETE | wall | speed-up vs {rows[0][0]} worker(s) |")
    print("|---|---|---|---|")
    for workers, complete, wall in rows:
        print(f"| {workers} | {complete} | {wall:.0f} s | {rows[0][2] / wall:.2f}x |")


def pack(args: argparse.Namespace) -> None:
    common = ["experiment=path_a", *data_args(args), f"model={args.model}", f"batch={args.batch}",
              f"epochs={args.epochs}", f"device={args.device}", f"workers={args.loader_workers}", "monitor.gates=[]",
              f"cache={args.cache}", "augmentation.close_mosaic=0"]
    print("| K trials on one device | train images/s per run | sum | images / wall s (whole batch) | vs K=1 (sum) |")
    print("|---|---|---|---|---|")
    base = None
    for k in args.k:
        runs = [args.work / f"pack_k{k}_{i}_{int(time.time())}" for i in range(k)]
        cmds = [[sys.executable, "-m", "xray_exp", *common, f"hydra.run.dir={run}"] for run in runs]
        if args.dry_run:
            for cmd in cmds:
                print("  " + " ".join(cmd[1:]))
            continue
        started = time.perf_counter()
        procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"}) for cmd in cmds]
        errors = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - started
        if any(p.returncode for p in procs):
            sys.exit(f"K={k}: a run failed:\n{next(e for p, e in zip(procs, errors) if p.returncode)[-3000:]}")
        rates = [json.loads((run / METRICS_FILE).read_text())["train_images_per_s"] for run in runs]
        total = sum(rates)
        base = base or total
        images = k * args.n_train * args.epochs
        print(f"| {k} | {', '.join(f'{r:.1f}' for r in rates)} | {total:.1f} | {images / wall:.1f} | {total / base:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("sweep", "pack"):
        p = sub.add_parser(name)
        p.add_argument("--work", type=Path, default=Path("/tmp/xray_exp_bench_workers"))
        p.add_argument("--n-train", type=int, default=32)
        p.add_argument("--n-val", type=int, default=16)
        p.add_argument("--imgsz", type=int, default=64)
        p.add_argument("--epochs", type=int, default=2)
    sub.choices["sweep"].set_defaults(dry_run=False)
    p = sub.choices["sweep"]
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p = sub.choices["pack"]
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 4], help="trainings packed on the device at once")
    p.add_argument("--model", default="yolov8x")
    p.add_argument("--batch", type=int, default=8)  # the guide's Path A batch
    p.add_argument("--device", default="0")
    p.add_argument("--loader-workers", type=int, default=4, help="dataloader workers per run")
    p.add_argument("--cache", default="ram")
    p.add_argument("--dry-run", action="store_true", help="print the commands, train nothing")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    (sweep if args.mode == "sweep" else pack)(args)


if __name__ == "__main__":
    main()
