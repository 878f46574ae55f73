"""A copy of a YOLO dataset whose labels carry one of the usual conversion mistakes, made on purpose.

The guide's plateau has a competing explanation: labels converted with a wrong reading (`<loc>` tokens
read as x, y where they are y, x). To measure how far such a mistake alone drags a detector, the
same images are trained with the mistake applied to every box (the `labels_transposed` claim).
The mistakes and their geometry are alignment.py's, so the check that finds a mistake and the tool
that makes one agree on what it is.

Images are hard links to the source's (nothing copied, the source is never modified); labels are new
files. The output is built atomically: all of it or nothing. Its data.yaml records the source and a
fingerprint of the source's labels, so a copy made from other labels is refused, never reused.
"""
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from xray_exp.data.alignment import MISTAKES, Mistake
from xray_exp.data.yolo import (SPLITS, FilePlacer, YoloDataset, check_output_dir, load_data_yaml, read_labels,
                                write_data_yaml)
from xray_exp.errors import XrayExpError
from xray_exp.files import building_dir

log = logging.getLogger(__name__)

MISLABEL_KEY = "mislabel"  # data.yaml key of the record: mistake, source, fingerprint
# Boxes with distinct coordinates and sizes, to tell which mistake's correction is another's inverse.
_PROBE = np.array([[0.31, 0.62, 0.21, 0.13], [0.57, 0.24, 0.09, 0.33]])


def mistake_named(name: str) -> Mistake:
    """The mistake alignment.py calls `name` (or its slug: `flipped-vertically`)."""
    for m in MISTAKES:
        if name in (m.name, slug(m.name)):
            return m
    raise XrayExpError(f"unknown mistake {name!r}; choose from {', '.join(slug(m.name) for m in MISTAKES)}")


def slug(name: str) -> str:
    """A mistake's name as a file-name and command-line word: 'scaled by 1024/1000' -> 'scaled-by-1024-1000'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def make_mistake(mistake: Mistake) -> Callable[[np.ndarray], np.ndarray]:
    """The function that commits `mistake` on boxes (rows of normalised xc, yc, w, h).

    alignment.py defines each mistake by its `undo`. Committing a mistake is undoing its opposite:
    transposing and flipping are their own opposites, a shift or a scale the same one the other way
    (both are in MISTAKES). The opposite is found by composing the undos, not listed by name, so a
    mistake added there is supported here as soon as its opposite is there too.
    """
    for other in MISTAKES:
        if np.allclose(mistake.undo(other.undo(_PROBE)), _PROBE):
            return other.undo
    raise XrayExpError(f"mistake {mistake.name!r} has no opposite in alignment.MISTAKES: it cannot be committed")


def mislabel_boxes(boxes: np.ndarray, mistake: Mistake) -> np.ndarray:
    """Boxes with `mistake` committed, clipped to the image as a converter writing YOLO rows would
    (Ultralytics drops a whole image with an out-of-range coordinate). Rows that end up with no area
    are NaN: the caller leaves them out."""
    moved = make_mistake(mistake)(np.asarray(boxes, np.float64).reshape(-1, 4))
    half = moved[:, 2:] / 2
    corners = np.clip(np.c_[moved[:, :2] - half, moved[:, :2] + half], 0.0, 1.0)
    out = np.c_[(corners[:, :2] + corners[:, 2:]) / 2, corners[:, 2:] - corners[:, :2]]
    out[(out[:, 2] <= 0) | (out[:, 3] <= 0)] = np.nan
    return out


@dataclass
class MislabelResult:
    data_yaml: Path
    images: int
    boxes: int
    dropped: int  # boxes the mistake pushed entirely off the image

    def describe(self) -> str:
        dropped = f", {self.dropped} pushed off the image and left out" if self.dropped else ""
        return f"wrote {self.data_yaml}: {self.images} images, {self.boxes} boxes{dropped}"


def fingerprint(ds: YoloDataset) -> str:
    """sha256 over every split's image names and label bytes: changes when the source's labels do."""
    h = hashlib.sha256()
    for split in SPLITS:
        for s in ds.samples(split):
            h.update(f"{split}\0{s.image.name}\0".encode())
            h.update(s.label.read_bytes() if s.label.is_file() else b"-")
    return h.hexdigest()[:16]


def mislabel_dataset(src_yaml: str | Path, mistake: str, out: str | Path, force: bool = False,
                     copy: bool = False) -> MislabelResult:
    """Write a copy of the dataset at src_yaml into out with `mistake` committed on every label.

    Polygon rows are written as their boxes (a detector reads only the box). Raises XrayExpError on a
    bad source label (file:line), an unknown mistake, or an existing out without force.
    """
    m = mistake_named(mistake)
    ds = load_data_yaml(src_yaml)
    out = Path(out).resolve()
    check_output_dir(out, force, [ds.yaml_path, ds.root, *(p for paths in ds.sources.values() for p in paths)])
    splits = {split: ds.samples(split) for split in SPLITS if ds.samples(split)}
    if not splits:
        raise XrayExpError(f"{ds.yaml_path}: no images in any split")
    record = {"mistake": m.name, "source": str(ds.yaml_path.resolve()), "fingerprint": fingerprint(ds)}
    header = (f"# {ds.yaml_path.resolve()} with every box {m.name} on purpose ({m.how}).\n"
              "# Made by xray-exp data mislabel: the labels are wrong by design.\n")
    placer = FilePlacer(copy)
    result = MislabelResult(out / "data.yaml", 0, 0, 0)
    try:
        with building_dir(out, force) as build:
            for split, samples in splits.items():
                _write_split(build, split, samples, ds, m, placer, result)
            data_yaml = write_data_yaml(build, ds.names, list(splits), header)
            with data_yaml.open("a", encoding="utf-8") as f:
                f.write(yaml.safe_dump({MISLABEL_KEY: record}, sort_keys=False))
    except OSError as e:  # a full disk, a read-only folder, or another process's copy renamed in first
        raise XrayExpError(f"cannot write {out}: {e.strerror or e}; nothing was written") from None
    log.info("mislabelled %d images (%s) into %s", result.images, m.name, out)
    return result


def _write_split(build: Path, split: str, samples: list, ds: YoloDataset, m: Mistake, placer: FilePlacer,
                 result: MislabelResult) -> None:
    (build / "images" / split).mkdir(parents=True)
    (build / "labels" / split).mkdir(parents=True)
    seen: dict[str, Path] = {}
    for s in samples:
        if s.image.stem in seen:  # flattened into one folder, their label files would be one
            raise XrayExpError(f"{ds.yaml_path}: {split} has two images with the stem {s.image.stem!r} "
                               f"({seen[s.image.stem]} and {s.image}); their labels would collide")
        seen[s.image.stem] = s.image
        labels = read_labels(s.label, ds.nc)
        rows = mislabel_boxes(np.array([lb.box() for lb in labels]), m) if labels else np.zeros((0, 4))
        kept = [(lb.cls, r) for lb, r in zip(labels, rows) if not np.isnan(r).any()]
        placer.place(s.image, build / "images" / split / s.image.name)
        text = "".join(f"{cls} {' '.join(f'{v:.6f}' for v in r)}\n" for cls, r in kept)
        (build / "labels" / split / f"{s.image.stem}.txt").write_text(text, encoding="utf-8")
        result.images += 1
        result.boxes += len(kept)
        result.dropped += len(labels) - len(kept)


def mislabelled_path(src_yaml: str | Path, mistake: str) -> Path:
    """Where the `mistake` copy of a dataset lives: beside its folder, `<folder>_<mistake slug>/`."""
    src = Path(src_yaml).resolve()
    return src.parent.with_name(f"{src.parent.name}_{slug(mistake_named(mistake).name)}") / "data.yaml"


def ensure_mislabelled(src_yaml: str | Path, mistake: str) -> Path:
    """The data.yaml of the `mistake` copy of src_yaml, built on first use (see mislabelled_path).

    Safe when several runs start at once: each builds in its own temp folder and the first rename
    wins. A copy made from other labels (the source was rebuilt or edited) is refused, not reused.
    """
    target = mislabelled_path(src_yaml, mistake)
    if not target.is_file():
        try:
            return mislabel_dataset(src_yaml, mistake, target.parent).data_yaml
        except XrayExpError:
            if not target.is_file():  # not a lost race (another process renamed its copy in first)
                raise
            log.info("another process built %s first; using its copy", target.parent)
    found = ((yaml.safe_load(target.read_text(encoding="utf-8")) or {}).get(MISLABEL_KEY) or {})
    want = fingerprint(load_data_yaml(src_yaml))
    if found.get("fingerprint") != want or found.get("mistake") != mistake_named(mistake).name:
        raise XrayExpError(f"{target.parent} was made from other labels than {src_yaml} has now (or with another "
                           "mistake): delete that folder and it is rebuilt on the next run")
    return target
