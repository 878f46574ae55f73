"""Pruning benchmark (not in CI): the same seeded search with and without median pruning, on CPU.

Runs `python -m xray_exp -m search=path_a` twice on the embedded synthetic data: once with
`hydra/sweeper/pruner=none`, once with `median`. The sampler is seeded and re-seeded per trial, and with
fewer trials than TPE's 10 random start-up trials both searches draw the same configurations, so the
difference is pruning alone. Prints epochs trained, best objective and wall time as a markdown table for
docs/benchmarks.md. Everything it writes goes under --work (default /tmp), nothing into the repo.

    python scripts/bench_pruning.py --trials 8 --epochs 10 --n-train 400 --n-val 80 --imgsz 128 --startup 1 --warmup 5

`--replay SWEEP_DIR` trains nothing: it feeds the per-epoch mAP50 curves (results.csv) of an unpruned sweep,
trial by trial, to Optuna's own MedianPruner for a grid of n_startup_trials x n_warmup_steps and prints
what each setting would have cost and kept. With deterministic training the same seeded search draws the
same trials and the same curves, so this is what a real pruned run of that setting gives.
"""
import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

from xray_exp.study import TRIALS_FILE

ROOT = Path(__file__).resolve().parent.parent


def run_search(name: str, pruner: list[str], args: argparse.Namespace) -> dict:
    sweep_dir = args.work / name
    data = args.work / f"data_{args.n_train}_{args.n_val}_{args.imgsz}" / "data.yaml"
    cmd = [sys.executable, "-m", "xray_exp", "-m", "search=path_a", "experiment=demo",
           f"dataset.data={data}", f"dataset.n_train={args.n_train}", f"dataset.n_val={args.n_val}",
           f"dataset.imgsz={args.imgsz}", f"imgsz={args.imgsz}", f"epochs={args.epochs}", "patience=100",
           f"hydra.sweep.dir={sweep_dir}", f"hydra.sweeper.study_name={name}",
           f"hydra.sweeper.n_trials={args.trials}", *pruner]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{name} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = list(csv.DictReader((sweep_dir / TRIALS_FILE).open()))
    complete = [float(r["objective"]) for r in rows if r["state"] == "COMPLETE"]
    return {"name": name, "trials": len(rows), "pruned": sum(r["state"] == "PRUNED" for r in rows),
            "epochs": sum(int(r["epochs_completed"] or 0) for r in rows),
            "best": max(complete) if complete else float("nan"), "wall_s": wall}


def replay(sweep_dir: Path) -> int:
    import optuna
    from optuna.trial import TrialState

    from xray_exp.analysis.plots import read_curve

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    jobs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    curves = [read_curve(job, "mAP50")[1] for job in jobs]
    total, best_full = sum(map(len, curves)), max(max(c) for c in curves)
    print(f"replay of {len(curves)} unpruned trials ({total} epochs, best mAP50 {best_full:.4f}) from {sweep_dir}\n")
    print("| n_startup_trials | n_warmup_steps | epochs trained | best mAP50 | target |")
    print("|---|---|---|---|---|")
    for startup in (1, 2, 3):
        for warmup in range(1, max(map(len, curves))):
            study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(startup, warmup))
            epochs = 0
            for curve in curves:
                trial = study.ask()
                for step, value in enumerate(curve, 1):
                    epochs += 1
                    trial.report(value, step)
                    if trial.should_prune():
                        study.tell(trial, state=TrialState.PRUNED)
                        break
                else:
                    study.tell(trial, max(curve))  # best.pt's objective
            best = study.best_value
            met = epochs <= total / 2 and best >= best_full - 0.01
            print(f"| {startup} | {warmup} | {epochs} ({epochs / total:.0%}) | {best:.4f} | {'met' if met else 'missed'} |")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-val", type=int, default=80)
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--startup", type=int, default=1, help="median pruner: finished trials before it judges")
    p.add_argument("--warmup", type=int, default=5, help="median pruner: epochs never judged")
    p.add_argument("--work", type=Path, default=Path("/tmp/xray_exp_bench_pruning"))
    p.add_argument("--replay", type=Path, metavar="SWEEP_DIR", help="replay an unpruned sweep's curves, train nothing")
    args = p.parse_args()
    if args.replay:
        return replay(args.replay)
    if args.work.exists() and any(args.work.iterdir()):
        sys.exit(f"{args.work} is not empty: a study there would be resumed, not rerun; remove it or pass --work")

    full = run_search("unpruned", ["hydra/sweeper/pruner=none"], args)
    pruned = run_search("median", ["hydra/sweeper/pruner=median", f"hydra.sweeper.pruner.n_startup_trials={args.startup}",
                                   f"hydra.sweeper.pruner.n_warmup_steps={args.warmup}"], args)
    print(f"{args.trials} trials x {args.epochs} epochs, yolov8n from scratch, {args.n_train}/{args.n_val} "
          f"synthetic images at {args.imgsz} px, median pruner n_startup_trials={args.startup} n_warmup_steps={args.warmup}\n")
    print("| search | trials (pruned) | epochs trained | best mAP50 | wall |")
    print("|---|---|---|---|---|")
    for r in (full, pruned):
        print(f"| {r['name']} | {r['trials']} ({r['pruned']}) | {r['epochs']} | {r['best']:.4f} | {r['wall_s']:.0f} s |")
    share = pruned["epochs"] / full["epochs"]
    gap = full["best"] - pruned["best"]
    met = share <= 0.5 and gap <= 0.01
    print(f"\npruned/unpruned epochs: {share:.0%}; best gap: {gap:+.4f}; target (<= 50 %, within 0.01): "
          f"{'met' if met else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
