"""What tests share besides fixtures: the repository's paths, the CLI as a real subprocess, tree hashes,
the tiny training settings and a detector with known outputs. Fixtures live in conftest.py."""
import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Small enough for seconds per training on 2 CPU cores, big enough for Ultralytics to run real epochs.
TINY_DATA = {"n_train": 32, "n_val": 16, "n_test": 0, "imgsz": 64, "seed": 0}


def tree_hashes(root: Path, mtimes: bool = False) -> dict:
    """Relative path -> content hash of every file under root (to show a tree was not touched); with
    mtimes, (hash, mtime in ns): a file rewritten with the same bytes counts as touched too."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) if mtimes
            else hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def run_module(module: str, *args, cwd: Path | None = None, timeout: float = 600, env: dict | None = None,
               stdin=subprocess.DEVNULL, merge_output: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m <module> args...` as users do; output captured as text (stderr into stdout when
    merge_output, to check what comes first). stdin is not a terminal unless a test gives it one."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd or ROOT, stdin=stdin, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
                          timeout=timeout, env={**os.environ, **(env or {})})


def run_train(*args, **kw) -> subprocess.CompletedProcess:
    """`python -m xray_exp ...`."""
    return run_module("xray_exp", *args, **kw)


def run_cli(*args, **kw) -> subprocess.CompletedProcess:
    """`xray-exp ...` (as `python -m xray_exp.cli`, the code the console script calls)."""
    return run_module("xray_exp.cli", *args, **kw)


def tiny_args(data_yaml: Path) -> list[str]:
    """Hydra overrides for a real yolov8n training of a few seconds on CPU on `data_yaml`."""
    data = [f"dataset.{k}={v}" for k, v in TINY_DATA.items()]
    return ["experiment=demo", f"dataset.data={data_yaml}", *data,
            "model=yolov8n", "imgsz=64", "epochs=2", "batch=16", "device=cpu", "workers=0",
            "augmentation.close_mosaic=0"]


def grid_detector(trained: Path, out: Path, scores: list[float], box_px: float = 16) -> Path:
    """A real checkpoint whose head ignores the image: every anchor predicts a box_px square with fixed
    per-class scores.

    A tiny CPU training reaches mAP50 = 0, which any evaluation would "match". This detector has a
    small non-zero mAP50 that moves with the confidence threshold and the split, so a test comparing
    it with Ultralytics' validation can fail, and its accuracy is known from the labels alone.
    """
    import torch

    ckpt = torch.load(trained, weights_only=False)
    head = ckpt["model"].model[-1]
    with torch.no_grad():
        for stride, box_branch, cls_branch in zip(head.stride.tolist(), head.cv2, head.cv3):
            # DFL: the expected bin (in grid units) is each side's distance from the anchor centre.
            distance = box_px / 2 / stride
            low, frac = int(distance), distance - int(distance)
            bins = torch.full((4, head.reg_max), -30.0)
            bins[:, low] = math.log(max(1 - frac, 1e-12))
            bins[:, low + 1] = math.log(max(frac, 1e-12))
            box_branch[-1].weight.zero_()
            box_branch[-1].bias.copy_(bins.flatten())
            cls_branch[-1].weight.zero_()
            cls_branch[-1].bias.copy_(torch.logit(torch.tensor(scores)))
    torch.save(ckpt, out)
    return out


# Rendered exports with known truth (convert and alignment tests): filled boxes whose pixel extent is the truth.
W, H = 240, 160  # not square, so a transposed reading cannot pass by accident
COLORS = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]


def render_scene(path: Path, objects) -> None:
    """Filled rectangles on black; PNG-exact pixels even with a .jpg name (cv2 picks the codec by name, so
    we encode PNG bytes: the converters never decode images, the test reads the truth back from pixels)."""
    img = np.zeros((H, W, 3), np.uint8)
    for k, (_, x1, y1, x2, y2) in enumerate(objects):
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), COLORS[k], -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".png", img)[1].tobytes())


def boxes_from_pixels(path: Path, n: int) -> list[tuple[int, int, int, int]]:
    """The truth as rendered: the pixel extent of each colour."""
    img = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    out = []
    for color in COLORS[:n]:
        ys, xs = np.nonzero(np.all(img == color, axis=2))
        out.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    return out


def loc_suffix(path: Path, objects) -> str:
    """PaliGemma's encoding: y_min, x_min, y_max, x_max in 1024 bins of height/width."""
    parts = []
    for (cls, *_), (x1, y1, x2, y2) in zip(objects, boxes_from_pixels(path, len(objects))):
        ys = [min(round(v / H * 1024), 1023) for v in (y1, y2)]
        xs = [min(round(v / W * 1024), 1023) for v in (x1, x2)]
        parts.append(f"<loc{ys[0]:04d}><loc{xs[0]:04d}><loc{ys[1]:04d}><loc{xs[1]:04d}> {cls}")
    return " ; ".join(parts)
