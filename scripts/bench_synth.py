"""Speed benchmark of the synthetic generator: time to build N images (default 1,000 at 640 px).

Builds into a temp folder (deleted afterwards), prints one markdown table row per repeat and the
images per second. Target (issue 3): 1,000 images at 640 px in <= 60 s on a 2-core machine.

    python scripts/bench_synth.py --n 1000 --imgsz 640 --repeats 1
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from xray_exp.data.synthetic import build_dataset, generate_image


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="images in all (90 %% train, 10 %% val)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--budget-s", type=float, default=60.0)
    args = p.parse_args()

    t0 = time.perf_counter()
    for i in range(20):
        generate_image(0, "train", i, args.imgsz)
    one = (time.perf_counter() - t0) / 20
    print(f"one image in one process (no file writes): {one * 1000:.0f} ms")
    print("\n| images | imgsz | cores | wall (s) | images/s | MB on disk |\n|---|---|---|---|---|---|")
    worst = 0.0
    for _ in range(args.repeats):
        tmp = Path(tempfile.mkdtemp(prefix="xray_exp_bench_synth_"))
        try:
            t0 = time.perf_counter()
            build_dataset(tmp / "ds", args.n - args.n // 10, args.n // 10, imgsz=args.imgsz, seed=0)
            wall = time.perf_counter() - t0
            mb = sum(f.stat().st_size for f in (tmp / "ds").rglob("*") if f.is_file()) / 1e6
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        worst = max(worst, wall)
        print(f"| {args.n} | {args.imgsz} | {os.cpu_count()} | {wall:.1f} | {args.n / wall:.0f} | {mb:.0f} |")
    print(f"\ncommand: {' '.join(sys.argv)}\nslowest {worst:.1f} s, budget {args.budget_s:.0f} s: "
          + ("PASS" if worst <= args.budget_s else "FAIL"))
    return 0 if worst <= args.budget_s else 1


if __name__ == "__main__":
    sys.exit(main())
