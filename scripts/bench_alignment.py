"""Measure the audit's alignment check on synthetic scans with exact labels (docs/alignment.md).

For every (size, seed) it builds a synthetic dataset, checks the labels as generated (any finding is a
false alarm), then the same images with labels rewritten by each conversion mistake (named right,
named wrong, or silent) and with one class transposed among correct ones. Last, the check's time on
1,000 images. Mistakes are written here from their definitions, not from the check's own corrections.
Run:
    .venv/bin/python scripts/bench_alignment.py [--seeds 5] [--images 200] [--time-images 1000]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs without installing the package
from xray_exp.data.alignment import DEFAULT_SAMPLE, MIN_BOXES, check_alignment  # noqa: E402
from xray_exp.data.synthetic import CLASS_NAMES, build_dataset  # noqa: E402
from xray_exp.data.yolo import label_lines, parse_line  # noqa: E402

SIZES = [96, 160, 320, 640, (320, 192), (192, 320)]
S = 1.024  # <loc> values over 1000 where they are 1024 bins


def _clip(xc, yc, w, h):
    x1, y1, x2, y2 = max(xc - w / 2, 0.0), max(yc - h / 2, 0.0), min(xc + w / 2, 1.0), min(yc + h / 2, 1.0)
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


MAKE = {  # mistake → what it does to a true box; the key is the name the check should give
    "transposed": lambda xc, yc, w, h: (yc, xc, h, w),
    "flipped vertically": lambda xc, yc, w, h: (xc, 1 - yc, w, h),
    "flipped horizontally": lambda xc, yc, w, h: (1 - xc, yc, w, h),
    "shifted half a box up-left": lambda xc, yc, w, h: (xc - w / 2, yc - h / 2, w, h),
    "shifted half a box down-right": lambda xc, yc, w, h: (xc + w / 2, yc + h / 2, w, h),
    "shifted half a box left": lambda xc, yc, w, h: (xc - w / 2, yc, w, h),
    "shifted half a box right": lambda xc, yc, w, h: (xc + w / 2, yc, w, h),
    "shifted half a box up": lambda xc, yc, w, h: (xc, yc - h / 2, w, h),
    "shifted half a box down": lambda xc, yc, w, h: (xc, yc + h / 2, w, h),
    "scaled by 1024/1000": lambda xc, yc, w, h: (xc * S, yc * S, w * S, h * S),
    "scaled by 1000/1024": lambda xc, yc, w, h: (xc / S, yc / S, w / S, h / S),
}
# The guide's converter does two things at once; the check should name the one that matters.
GUIDE = "transposed + per 1000 (the guide's converter)"
# A mistake that is not listed must be reported as labels off the objects (None), not given a near name.
MAKE_EXTRA = {GUIDE: ("transposed", lambda *b: MAKE["transposed"](*MAKE["scaled by 1024/1000"](*b))),
              "turned 180° (not listed: no name expected)": (None, lambda xc, yc, w, h: (1 - xc, 1 - yc, w, h))}


def jitter(box, rng, j: float):
    """A hand-drawn box instead of an exact one: each edge moved by up to j of the box's side."""
    xc, yc, w, h = box
    x1, x2 = xc - w / 2 + rng.uniform(-j, j) * w, xc + w / 2 + rng.uniform(-j, j) * w
    y1, y2 = yc - h / 2 + rng.uniform(-j, j) * h, yc + h / 2 + rng.uniform(-j, j) * h
    return _clip((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)


def relabel(data_yaml: Path, out: Path, make, only_class: int | None = None) -> Path:
    """The dataset's images (hard links) with every box (or one class's boxes) rewritten by `make`."""
    src = data_yaml.parent
    for split in (src / "images").iterdir():  # empty split folders too: data.yaml names them
        (out / "images" / split.name).mkdir(parents=True)
    for img in (src / "images").rglob("*.jpg"):
        os.link(img, out / img.relative_to(src))
    for label in (src / "labels").rglob("*.txt"):
        rows = []
        for i, text in label_lines(label):
            lb = parse_line(text, i)
            box = lb.box() if only_class not in (None, lb.cls) else _clip(*make(*lb.box()))
            rows.append(f"{lb.cls} " + " ".join(f"{v:.6f}" for v in box) + "\n")
        dst = out / label.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("".join(rows))
    doc = yaml.safe_load(data_yaml.read_text())
    doc["path"] = str(out)
    (out / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return out / "data.yaml"


def outcome(report, expected: str | None, cls: int | None = None) -> str:
    """named (right), partly (the right mistake, but for some classes only), silent, or wrong: what was
    said; expected None: "off the objects, unexplained"."""
    named = [(s.mistake.name if s.mistake else None, s.cls) for s in report.suspicions]
    if not named:
        return "silent"
    if named == [(expected, cls)]:
        return "named"
    if cls is None and all(n == expected and c is not None for n, c in named):
        return "partly"
    return "wrong: " + ", ".join(
        f"{n or 'unexplained'} (class {c})" for n, c in named)


def size_name(size) -> str:
    return f"{size}x{size}" if isinstance(size, int) else f"{size[0]}x{size[1]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="datasets per size")
    ap.add_argument("--images", type=int, default=DEFAULT_SAMPLE, help="images per dataset")
    ap.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help="images the check samples")
    ap.add_argument("--sizes", default=",".join(size_name(s) for s in SIZES), help="WxH,... (default: %(default)s)")
    ap.add_argument("--time-images", type=int, default=1000, help="images in the timing run (0: skip)")
    ap.add_argument("--time-size", type=int, default=640)
    ap.add_argument("--jitter", type=float, default=0.0,
                    help="first redraw every true box by hand: each edge moved by up to this share of its side")
    ap.add_argument("--work", type=Path, help="keep the datasets here (default: a temp folder, removed)")
    args = ap.parse_args()
    sizes = [(int(w), int(h)) for w, h in (s.split("x") for s in args.sizes.split(","))]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_alignment_"))
    results: dict[str, Counter] = defaultdict(Counter)  # row → outcome counts
    shares: dict[str, list[float]] = defaultdict(list)
    false_alarms = []
    closest = {"overall": (0.0, "", ""), "per class": (0.0, "", "")}
    start = time.perf_counter()
    try:
        for w, h in sizes:
            for seed in range(args.seeds):
                tag = f"{w}x{h}_s{seed}"
                imgsz = w if w == h else [w, h]
                data = build_dataset(work / tag / "exact", n_train=args.images, n_val=0, imgsz=imgsz, seed=100 + seed)
                if args.jitter:  # the "correct" labels are then hand-drawn ones, and the mistakes start from them
                    rng = np.random.default_rng(seed)
                    data = relabel(data, work / tag / "correct", lambda *b: jitter(b, rng, args.jitter))
                ok = check_alignment(data, args.sample)
                # How close correct labels come to a verdict: the highest share any mistake reaches
                # (overall, and per class where the class has enough moved boxes to count).
                for m, t in ok.tallies.items():
                    closest["overall"] = max(closest["overall"], (round(t.share, 2), m, tag))
                for c, tallies in ok.class_tallies.items():
                    for m, t in tallies.items():
                        if t.moved >= MIN_BOXES:
                            closest["per class"] = max(closest["per class"], (round(t.share, 2), f"{m}, {CLASS_NAMES[c]}", tag))
                results["correct labels"]["silent" if not ok.suspicions else "false alarm"] += 1
                false_alarms += [f"{tag}: {s.message(CLASS_NAMES)}" for s in ok.suspicions]
                rows = [(m, m, f, None) for m, f in MAKE.items()]
                rows += [(row, m, f, None) for row, (m, f) in MAKE_EXTRA.items()]
                top = max(ok.class_boxes, key=ok.class_boxes.get)
                rows.append(("one class transposed", "transposed", MAKE["transposed"], top))
                for row, expected, make, cls in rows:
                    out = work / tag / row.replace(" ", "_").replace("/", "-")
                    report = check_alignment(relabel(data, out, make, cls), args.sample)
                    results[row][outcome(report, expected, cls)] += 1
                    tallies = report.tallies if cls is None else report.class_tallies[cls]
                    if expected:
                        shares[row].append(tallies[expected].share)
                    shutil.rmtree(out)
                print(f"{tag}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
                shutil.rmtree(work / tag)
        n = len(sizes) * args.seeds
        if n:  # --seeds 0: the timing alone
            hand = f", true boxes redrawn with edge jitter up to {args.jitter:.0%} of their side" if args.jitter else ""
            print(f"\n{n} datasets ({', '.join(f'{w}x{h}' for w, h in sizes)}; {args.seeds} seeds each), "
                  f"{args.images} images each, check sample {args.sample}{hand}\n")
            print("| labels | named right | right, for some classes only | silent | false alarm or wrong name "
                  "| median share favouring the truth |")
            print("|---|---|---|---|---|---|")
            for row, counts in results.items():
                wrong = sum(v for k, v in counts.items() if k.startswith("wrong") or k == "false alarm")
                med = f"{statistics.median(shares[row]):.2f}" if shares[row] else "–"
                print(f"| {row} | {counts['named']}/{n} | {counts['partly']}/{n} | {counts['silent']}/{n} | {wrong}/{n} "
                      f"| {med} |")
            for line in false_alarms:
                print(f"false alarm: {line}")
            for where, (share, what, tag) in closest.items():
                print(f"correct labels, highest share favouring a mistake ({where}): {share:.2f} ({what}; {tag})")
            for row, counts in results.items():
                for k, v in counts.items():
                    if k.startswith("wrong"):
                        print(f"{row}: {k} ×{v}")
        if args.time_images:
            # ~15 % of synthetic scans hold no threat and are not sampled: build enough for time_images with boxes
            data = build_dataset(work / "timing", n_train=args.time_images * 5 // 4, n_val=0, imgsz=args.time_size,
                                 seed=7)
            for sample in (args.time_images, DEFAULT_SAMPLE):
                times, cpu = [], []
                for _ in range(3):
                    t0, c0 = time.perf_counter(), time.process_time()
                    report = check_alignment(data, sample)
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)  # this process's CPU: less sensitive to a busy box
                print(f"time: {report.images} images ({report.boxes} boxes) at {args.time_size} px: wall best "
                      f"{min(times):.2f} s, median {statistics.median(times):.2f} s of 3; CPU best {min(cpu):.2f} s")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
