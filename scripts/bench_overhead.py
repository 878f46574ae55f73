"""Benchmark: wall time of `python -m xray_exp` vs plain Ultralytics (`yolo train`) on the same config.

Runs the pair alternately (so drift hits both), >= 3 pairs, and prints each time and the median ratio.
Target: ratio <= 1.03. Usage: python scripts/bench_overhead.py [--pairs 3] [--epochs 6] [--device 0]
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import xray_exp  # noqa: E402  (sets the offline environment the children inherit)
from hydra import compose, initialize_config_dir  # noqa: E402

from xray_exp.run import train_args  # noqa: E402
from xray_exp.data.synthetic import build_dataset  # noqa: E402


# Ultralytics' own `yolo` command, called through its entry point so it works wherever the package is.
YOLO_CLI = [sys.executable, "-c", "from ultralytics.cfg import entrypoint; entrypoint()"]


def timed(cmd: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--model", default="yolov8n")
    parser.add_argument("--device", default="cpu", help="cpu, or a CUDA index such as 0")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    data = build_dataset(work / "data", n_train=args.n_train, n_val=args.n_train // 4, imgsz=args.imgsz, seed=0)
    overrides = ["experiment=demo", f"dataset.data={data}", f"dataset.n_train={args.n_train}",
                 f"dataset.n_val={args.n_train // 4}", f"dataset.imgsz={args.imgsz}", f"imgsz={args.imgsz}",
                 f"epochs={args.epochs}", "augmentation.close_mosaic=1", f"model={args.model}",
                 f"device={args.device}", f"workers={0 if args.device == 'cpu' else 8}"]
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        kwargs = train_args.train_kwargs(compose("train", overrides=overrides))
    plain_args = [f"{k}={v}" for k, v in kwargs.items() if v is not None]

    ours, plain = [], []
    for i in range(args.pairs):
        ours.append(timed([sys.executable, "-m", "xray_exp", *overrides, f"hydra.run.dir={work / f'ours{i}'}"], ROOT))
        plain.append(timed([*YOLO_CLI, "train", f"model={args.model}.yaml", f"data={data}",
                            "pretrained=False", *plain_args, f"project={work}", f"name=plain{i}"], work))
        print(f"pair {i + 1}: xray_exp {ours[-1]:.1f} s, plain ultralytics {plain[-1]:.1f} s, "
              f"ratio {ours[-1] / plain[-1]:.3f}", flush=True)
    ratios = [a / b for a, b in zip(ours, plain)]
    print(f"median: xray_exp {statistics.median(ours):.1f} s, plain {statistics.median(plain):.1f} s, "
          f"median ratio {statistics.median(ratios):.3f} (target <= 1.03)")


if __name__ == "__main__":
    main()
