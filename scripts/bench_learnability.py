"""Learnability benchmark (not in CI): can a yolov8n trained from scratch on CPU learn the synthetic data?

Builds a synthetic dataset, trains yolov8n from its architecture yaml (no pretrained weights) and stops
as soon as val mAP50 reaches the target. Prints the per-epoch curve as a markdown table for
docs/benchmarks.md. Everything it writes goes under --work (default /tmp), nothing into the repo.

    python scripts/bench_learnability.py --n-train 600 --n-val 150 --imgsz 160 --epochs 30
"""
import argparse
import json
import sys
import time
from pathlib import Path

import xray_exp  # noqa: F401  (sets Ultralytics' offline environment before it is imported)
from xray_exp.data.synthetic import ensure_dataset


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-val", type=int, default=150)
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--epochs", type=int, default=30, help="upper bound; stops early at --target")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--target", type=float, default=0.5, help="val mAP50 to reach")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--work", type=Path, default=Path("/tmp/xray_exp_bench_learnability"))
    args = p.parse_args()

    t0 = time.perf_counter()
    data_yaml = ensure_dataset(args.work / f"data_{args.n_train}_{args.n_val}_{args.imgsz}_{args.seed}",
                               args.n_train, args.n_val, imgsz=args.imgsz, seed=args.seed)
    build_s = time.perf_counter() - t0

    from ultralytics import YOLO

    curve = []
    t_train = time.perf_counter()

    def on_fit_epoch_end(trainer) -> None:
        if "val/box_loss" not in trainer.metrics:  # the final re-validation of best.pt fires this too
            return
        m50 = float(trainer.metrics.get("metrics/mAP50(B)", 0.0))
        curve.append({"epoch": trainer.epoch + 1, "mAP50": round(m50, 4),
                      "mAP50-95": round(float(trainer.metrics.get("metrics/mAP50-95(B)", 0.0)), 4),
                      "elapsed_s": round(time.perf_counter() - t_train, 1)})
        print(json.dumps(curve[-1]), flush=True)
        if m50 >= args.target:
            trainer.stop = True

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
    save_dir = args.work / f"run_{int(time.time())}"
    model.train(data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=0,
                device=args.device, seed=args.seed, pretrained=False, plots=False, save_dir=str(save_dir),
                verbose=False)
    train_s = time.perf_counter() - t_train
    best = max((c["mAP50"] for c in curve), default=0.0)
    reached = next((c for c in curve if c["mAP50"] >= args.target), None)

    print("\n| epoch | val mAP50 | val mAP50-95 | elapsed (s) |\n|---|---|---|---|")
    for c in curve:
        print(f"| {c['epoch']} | {c['mAP50']:.3f} | {c['mAP50-95']:.3f} | {c['elapsed_s']:.0f} |")
    print(f"\ncommand: {' '.join(sys.argv)}")
    print(f"dataset build {build_s:.0f} s; training {train_s:.0f} s ({train_s / 60:.1f} min); best mAP50 {best:.3f}; "
          + (f"target {args.target} reached at epoch {reached['epoch']} after {reached['elapsed_s']:.0f} s"
             if reached else f"target {args.target} NOT reached"))
    (args.work / "learnability.json").write_text(json.dumps(
        {"argv": sys.argv, "build_s": build_s, "train_s": train_s, "curve": curve}, indent=1))
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
