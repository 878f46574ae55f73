"""Grids of images with their boxes drawn: how a person checks what a model learns from or predicts."""
import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from xray_exp.files import write_bytes


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, saturated BGR colour per class id (golden-ratio hue steps keep neighbours apart)."""
    hue = int((class_id * 0.618034 % 1.0) * 179)
    hsv = np.uint8([[[hue, 230, 230]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_boxes(image: np.ndarray, boxes: Sequence[tuple[int, float, float, float, float]],
               names: Sequence[str] | dict, scores: Sequence[float] | None = None) -> np.ndarray:
    """Draw YOLO-normalised boxes (cls, xc, yc, w, h) with class names on a copy of a BGR image."""
    out = image.copy()
    h, w = out.shape[:2]
    thickness = max(1, round(min(h, w) / 300))
    for i, (cls, xc, yc, bw, bh) in enumerate(boxes):
        x1, y1 = int(round((xc - bw / 2) * w)), int(round((yc - bh / 2) * h))
        x2, y2 = int(round((xc + bw / 2) * w)), int(round((yc + bh / 2) * h))
        color = class_color(int(cls))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        name = names[int(cls)] if int(cls) in range(len(names)) or isinstance(names, dict) else str(cls)
        text = name if scores is None else f"{name} {scores[i]:.2f}"
        scale = max(0.3, min(h, w) / 900)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(th + 2, y1)
        cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 2, ty), color, -1)
        cv2.putText(out, text, (x1 + 1, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def write_grid(tiles: Sequence[np.ndarray], out: str | Path, tile_size: int = 320,
               captions: Sequence[str] | None = None) -> Path:
    """Resize tiles to a square cell, lay them out in a near-square grid and write a PNG atomically."""
    if not tiles:
        raise ValueError("no images to draw")
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    grid = np.full((rows * tile_size, cols * tile_size, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        cell = cv2.resize(tile, (tile_size, tile_size), interpolation=cv2.INTER_AREA)
        if captions:
            cv2.putText(cell, captions[i][:40], (4, tile_size - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (0, 0, 0), 1, cv2.LINE_AA)
        r, c = divmod(i, cols)
        grid[r * tile_size:(r + 1) * tile_size, c * tile_size:(c + 1) * tile_size] = cell
    ok, png = cv2.imencode(".png", grid)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return write_bytes(out, png.tobytes())
