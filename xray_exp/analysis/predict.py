"""Detections of a trained model on images, drawn so a person can look at them (plus one gallery PNG)."""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from xray_exp.files import write_bytes
from xray_exp.data.yolo import is_image
from xray_exp.errors import XrayExpError
from xray_exp.analysis.gallery import draw_boxes, write_grid
from xray_exp.run.train_args import check_device

log = logging.getLogger(__name__)

GALLERY_FILE = "gallery.png"
GALLERY_MAX = 36  # a 6 x 6 grid; past that the tiles get too small to read


@dataclass
class Detections:
    image: Path
    boxes: list[tuple[int, float, float, float, float]]  # (cls, xc, yc, w, h), normalised
    scores: list[float]
    original: np.ndarray  # the BGR image as Ultralytics read it


def load_model(weights: str | Path):
    """An Ultralytics YOLO model from a local .pt; one-line errors instead of a download attempt."""
    weights = Path(weights)
    if not weights.is_file():
        raise XrayExpError(f"{weights}: weights not found (a run folder keeps them in weights/best.pt)")
    from ultralytics import YOLO  # deferred: seconds of torch import that drawing and listing do not need

    try:
        return YOLO(str(weights))
    except Exception as e:  # Ultralytics raises many kinds for a file that is not its checkpoint
        first_line = (str(e).splitlines() or [""])[0]
        raise XrayExpError(f"{weights}: not an Ultralytics checkpoint ({type(e).__name__}: {first_line})") from None


def list_images(source: str | Path) -> list[Path]:
    """An image file, or every image under a folder (sorted)."""
    source = Path(source)
    if source.is_file():
        if not is_image(source):
            raise XrayExpError(f"{source}: not an image file")
        return [source]
    if not source.is_dir():
        raise XrayExpError(f"{source}: no such image or folder")
    images = sorted(p for p in source.rglob("*") if p.is_file() and is_image(p))
    if not images:
        raise XrayExpError(f"{source}: no images in this folder")
    return images


def detect(model, images: Sequence[Path], conf: float, device: str | None = None, imgsz: int | None = None,
           batch: int = 16) -> Iterator[Detections]:
    """Run the model over images (streamed, so memory stays flat), one Detections per image in order."""
    kwargs = {"imgsz": imgsz} if imgsz else {}  # default: the training image size stored in the checkpoint
    for start in range(0, len(images), batch):
        chunk = [str(p) for p in images[start:start + batch]]
        results = model.predict(chunk, conf=conf, device=device, verbose=False, stream=True, **kwargs)
        for path in chunk:
            try:
                result = next(results)
            except Exception:
                # Ultralytics' loader falls back to PIL for an image OpenCV cannot decode, and fails there
                # blaming a missing HEIF plugin: name the image instead.
                bad = next((p for p in chunk if cv2.imread(p) is None), None)
                if bad is None:
                    raise
                raise XrayExpError(f"{bad}: not a readable image (OpenCV cannot decode it)") from None
            boxes = result.boxes
            rows = [(int(c), *map(float, xywhn)) for c, xywhn in zip(boxes.cls.tolist(), boxes.xywhn.tolist())]
            yield Detections(Path(path), rows, [float(s) for s in boxes.conf.tolist()], result.orig_img)


def predict(weights: str | Path, source: str | Path, out: str | Path, conf: float = 0.25,
            device: str | None = None, imgsz: int | None = None) -> list[Path]:
    """Draw detections on every source image into out/ (PNG per image) and write out/gallery.png.

    Returns the files written, the gallery last. Source images are never modified.
    """
    images = list_images(source)
    out = Path(out)
    check_device(device)
    model = load_model(weights)
    names = model.names
    root = Path(source) if Path(source).is_dir() else Path(source).parent
    written, tiles, captions = [], [], []
    for det in detect(model, images, conf, device, imgsz):
        drawn = draw_boxes(det.original, det.boxes, names, det.scores)
        # Flattened relative path: two folders may hold images with the same name.
        stem = "__".join(det.image.relative_to(root).with_suffix("").parts)
        ok, png = cv2.imencode(".png", drawn)
        if not ok:
            raise XrayExpError(f"{det.image}: could not encode the drawn image")
        written.append(write_bytes(out / f"{stem}.png", png.tobytes()))
        if len(tiles) < GALLERY_MAX:
            tiles.append(drawn)
            captions.append(f"{det.image.name} ({len(det.boxes)})")
    written.append(write_grid(tiles, out / GALLERY_FILE, captions=captions))
    log.info(f"{len(images)} images with detections at conf >= {conf} -> {out}")
    return written
