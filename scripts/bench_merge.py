"""Time `merge_datasets` on the Path B shape: luggage stand-in (6,164 / 956) + cargoxray stand-in (462 / 132 / 65).

Images are tiny placeholder JPEGs (hard links to one file), so the time measured is the merge's own
work: listing, reading and checking 7,779 label files, remapping, linking and writing. Run:
    .venv/bin/python scripts/bench_merge.py [--copy] [--repeat 3]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs without installing the package
from xray_exp.data.merge import merge_datasets  # noqa: E402

SHAPES = {"luggage_xray": (12, {"train": 6164, "valid": 956}),
          "cargoxray": (16, {"train": 462, "valid": 132, "test": 65})}


def stand_in(root: Path, nc: int, counts: dict[str, int]) -> Path:
    jpg = root / "placeholder.jpg"
    root.mkdir(parents=True)
    cv2.imwrite(str(jpg), np.full((8, 8, 3), 128, np.uint8))
    for split, n in counts.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(n):
            stem = f"{root.name}_{split}_{i:05d}_jpg.rf.{i:032x}"
            os.link(jpg, root / split / "images" / f"{stem}.jpg")
            rows = "".join(f"{(i + k) % nc} 0.{k + 3} 0.5 0.125 0.25\n" for k in range(i % 4))
            (root / split / "labels" / f"{stem}.txt").write_text(rows)
    keys = {("val" if s == "valid" else s): f"{s}/images" for s in counts}
    (root / "data.yaml").write_text(yaml.safe_dump({**keys, "names": [f"{root.name}_{c}" for c in range(nc)]}))
    return root / "data.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copy", action="store_true", help="copy images instead of hard-linking")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = [stand_in(tmp / name, nc, counts) for name, (nc, counts) in SHAPES.items()]
        times = []
        for r in range(args.repeat):
            t0 = time.perf_counter()
            result = merge_datasets(sources, tmp / f"merged_{r}", copy=args.copy)
            times.append(time.perf_counter() - t0)
        n = result.linked + result.copied
        mode = "copied" if args.copy else "hard-linked"
        print(f"merge of {n} images ({mode}), {args.repeat} runs: best {min(times):.2f} s, "
              f"median {sorted(times)[len(times) // 2]:.2f} s ({n / min(times):.0f} images/s)")


if __name__ == "__main__":
    main()
