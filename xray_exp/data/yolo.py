"""YOLO datasets as Ultralytics reads them: data.yaml, split folders, image/label pairs, label rows.

Merge, convert and audit all go through this module, so a label row is parsed in one place and the
rules match Ultralytics 8.4 (`ultralytics/data/utils.py: verify_image_label`, `img2label_paths`).
It also holds the writing steps merge and convert share: the output check, image placement (hard link
or copy) and the data.yaml they write.
"""
import contextlib
import errno
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import yaml

from xray_exp.errors import XrayExpError
from xray_exp.files import building_dir, read_yaml

log = logging.getLogger(__name__)

# Ultralytics' IMG_FORMATS: other files in an image folder are not images to it either.
IMG_FORMATS = frozenset({"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif",
                         "tiff", "webp"})
SPLITS = ("train", "val", "test")  # data.yaml keys, in the order reports list them
# Folder names exports use for each data.yaml key (Roboflow writes "valid").
SPLIT_FOLDERS = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}


def split_key(name: str) -> str | None:
    """The data.yaml key for a split folder or file-name token (valid → val), or None."""
    name = name.lower()
    return next((key for key, folders in SPLIT_FOLDERS.items() if name in folders), None)


class LabelError(ValueError):
    """A label row that is not a YOLO box or polygon row."""


@dataclass(frozen=True)
class Label:
    """One label row: a box (xc yc w h) or a polygon (x1 y1 x2 y2 ...), normalised to the image size."""

    cls: int
    coords: tuple[float, ...]
    text: str  # the coordinates as written, so a class remap rewrites nothing else
    line: int

    @property
    def is_polygon(self) -> bool:
        return len(self.coords) > 4

    def box(self) -> tuple[float, float, float, float]:
        """(xc, yc, w, h); a polygon's is its bounding box, as Ultralytics derives it."""
        if not self.is_polygon:
            return self.coords  # type: ignore[return-value]
        xs, ys = self.coords[0::2], self.coords[1::2]
        x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
        return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1

    def row(self, cls: int | None = None) -> str:
        """The label row, with its class id replaced by cls if given."""
        return f"{self.cls if cls is None else cls} {self.text}"


def parse_line(text: str, line: int = 0) -> Label:
    """Parse one non-blank label row; raise LabelError saying what is wrong with it."""
    parts = text.split()
    n = len(parts)
    if n != 5 and (n < 7 or n % 2 == 0):
        raise LabelError(f"{n} fields: a box row has 5 (class xc yc w h), a polygon row an odd number >= 7 "
                         f"(class x1 y1 x2 y2 x3 y3 ...)")
    try:
        cls = float(parts[0])
        coords = tuple(float(p) for p in parts[1:])
    except ValueError:
        raise LabelError(f"not a number in {' '.join(parts)!r}") from None
    if not cls.is_integer() or cls < 0:
        raise LabelError(f"class id {parts[0]} is not a non-negative integer")
    return Label(int(cls), coords, " ".join(parts[1:]), line)


def label_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank row; a missing label file is an image with no objects."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return
    except UnicodeDecodeError:
        raise XrayExpError(f"{path}: not a UTF-8 text label file") from None
    for i, row in enumerate(text.splitlines(), 1):
        if row.strip():
            yield i, row


def read_labels(path: Path, nc: int | None = None) -> list[Label]:
    """All rows of a label file; the first bad row (or class id >= nc) raises XrayExpError file:line."""
    labels = []
    for i, row in label_lines(path):
        try:
            label = parse_line(row, i)
        except LabelError as e:
            raise XrayExpError(f"{path}:{i}: {e}") from None
        if nc is not None and label.cls >= nc:
            raise XrayExpError(f"{path}:{i}: class id {label.cls} >= nc {nc} of its data.yaml")
        labels.append(label)
    return labels


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last /images/ folder becomes /labels/, the extension .txt."""
    head, sep, tail = str(image).rpartition(f"{os.sep}images{os.sep}")
    name = f"{head}{os.sep}labels{os.sep}{tail}" if sep else str(image)
    return Path(name).with_suffix(".txt")


def is_image(path: str | Path) -> bool:
    return str(path).rpartition(".")[2].lower() in IMG_FORMATS


@dataclass(frozen=True)
class Sample:
    """An image and its label file (which may not exist: a background image)."""

    image: Path
    label: Path


@dataclass
class YoloDataset:
    """A data.yaml with its paths resolved the way Ultralytics resolves them."""

    yaml_path: Path
    root: Path
    names: list[str]
    sources: dict[str, list[Path]] = field(default_factory=dict)  # split key → image folders / list files

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def name(self) -> str:
        """The dataset's short name: its folder's name (data/luggage_xray/data.yaml → luggage_xray)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.yaml_path.resolve().parent.name) or "dataset"

    def samples(self, split: str) -> list[Sample]:
        """The split's images in sorted order (as Ultralytics lists them), each with its label path."""
        images: list[Path] = []
        for src in self.sources.get(split, []):
            images += _images_in(src)
        return [Sample(img, label_path(img)) for img in sorted(set(images))]

    def input_paths(self) -> list[Path]:
        """Every file and folder this dataset is read from: the yaml, its root, each split's image
        folders (or list file and the folders it names) and the label folders beside them."""
        paths = [self.yaml_path, self.root]
        for sources in self.sources.values():
            for src in sources:
                if src.is_dir():
                    folders = [src]
                else:  # a list file
                    paths.append(src)
                    folders = sorted({image.parent for image in _images_in(src)})
                paths += folders + [label_path(f / "x.jpg").parent for f in folders]
        return paths

    def label_folders(self, split: str) -> list[Path]:
        """Label folders that pair with the split's image folders (for labels that have no image)."""
        folders = [label_path(src / "x.jpg").parent for src in self.sources.get(split, []) if src.is_dir()]
        return [f for f in folders if f.is_dir()]


def _images_in(src: Path) -> list[Path]:
    if src.is_dir():
        return [Path(d) / f for d, _, files in os.walk(src) for f in files if is_image(f)]
    # A list file: one image per line; "./x" is relative to the list file (Ultralytics' rule).
    rows = [r.strip() for r in src.read_text(encoding="utf-8-sig").splitlines() if r.strip()]
    return [src.parent / r[2:] if r.startswith("./") else Path(r) for r in rows if is_image(r)]


def load_data_yaml(path: str | Path) -> YoloDataset:
    """Read and check a data.yaml: names present and consistent with nc, every split path existing.

    Relative paths follow Ultralytics: split paths are relative to `path:` (itself relative to the
    yaml's folder here, not to the working directory), with Roboflow's `../train/images` quirk retried
    without the `../`. A yaml with no split keys gets them from the folders beside it, in either layout
    (`images/train` or `train/images`; `valid` or `val`).
    """
    path = Path(path)
    if not path.is_file():
        raise XrayExpError(f"{path}: data.yaml not found")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise XrayExpError(f"{path}: expected a mapping with names and train/val paths")
    names = _names(path, data)
    root = Path(data.get("path") or ".")
    root = (root if root.is_absolute() else path.parent / root).resolve()
    sources = {key: _split_paths(path, root, key, data[key]) for key in SPLITS if data.get(key)}
    if not sources:
        sources = discover_splits(root)
    if not sources:
        raise XrayExpError(f"{path}: no train/val/test paths and no split folders (images/train or "
                           f"train/images) under {root}")
    return YoloDataset(path, root, names, sources)


def _names(path: Path, data: dict) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise XrayExpError(f"{path}: names keys must be 0..{len(names) - 1}, got {sorted(names)}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise XrayExpError(f"{path}: no class names (expected 'names:' as a list or an id: name mapping)")
    names = [str(n) for n in names]
    if "nc" in data and data["nc"] != len(names):
        raise XrayExpError(f"{path}: nc is {data['nc']} but names has {len(names)} entries")
    return names


def _split_paths(yaml_path: Path, root: Path, key: str, value) -> list[Path]:
    out = []
    for entry in value if isinstance(value, list) else [value]:
        p = root / str(entry)
        if not p.exists() and str(entry).startswith("../"):
            p = root / str(entry)[3:]
        if not p.exists():
            raise XrayExpError(f"{yaml_path}: {key} path {entry} not found (looked at {p})")
        out.append(p.resolve())
    return out


def discover_splits(root: Path) -> dict[str, list[Path]]:
    """Split key → image folder, for whichever layout exists under root (images/train or train/images)."""
    found = {}
    for key, folders in SPLIT_FOLDERS.items():
        for folder in folders:
            candidates = [root / "images" / folder, root / folder / "images"]
            hit = next((c for c in candidates if c.is_dir()), None)
            if hit:
                found[key] = [hit]
                break
    return found


def check_output_dir(out: Path, force: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse to replace an existing non-empty output unless force, before any work is done.

    `inputs` are the files and folders the command reads (a data.yaml, its `path:` root, its split and
    label folders, an export folder, --images). An output that is one of them, holds one or lies inside
    one is refused whatever force says: replacing it would delete the data being read, and writing into
    it would change a source.
    """
    out = Path(out).resolve()
    inputs = [Path(src).resolve() for src in inputs]
    for src in inputs:
        if src == out or out in src.parents:
            raise XrayExpError(f"output {out} would replace the input {src}; sources are never modified: "
                               "choose an --out outside them")
    for src in inputs:
        if src in out.parents:
            raise XrayExpError(f"output {out} is inside the input {src}; sources are never modified: "
                               "choose an --out outside them")
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise XrayExpError(f"{out} already exists; pass --force to replace it")


@contextlib.contextmanager
def building_dataset(out: Path, force: bool) -> Iterator[Path]:
    """files.building_dir for merge and convert: a write that fails (a full disk, a read-only folder)
    is one line naming the output, and nothing is left behind."""
    try:
        with building_dir(out, force) as build:
            yield build
    except OSError as e:
        where = e.filename2 or e.filename
        raise XrayExpError(f"cannot write {out}: {e.strerror or e}{f' ({where})' if where else ''}; "
                           "nothing was written") from None


class FilePlacer:
    """Puts image files into a new dataset: hard links (no extra disk, instant) unless copy is asked.

    Falls back to copying for good when the file system refuses links (across devices, or file
    systems without hard links), so one dataset on another disk still merges.
    """

    def __init__(self, copy: bool = False):
        self.copy = copy
        self.linked = 0
        self.copied = 0

    def place(self, src: Path, dst: Path) -> None:
        if not self.copy:
            try:
                os.link(src, dst)
                self.linked += 1
                return
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                log.info("hard links not possible here (%s); copying images instead", e.strerror)
                self.copy = True
        shutil.copyfile(src, dst)
        self.copied += 1


def write_data_yaml(build: Path, names: Sequence[str], splits: Sequence[str], header: str = "") -> Path:
    """data.yaml for the images/<split> + labels/<split> layout.

    No `path:` key: Ultralytics (check_det_dataset) and load_data_yaml then resolve the splits against
    the yaml's own folder, so the dataset keeps working when it is copied or moved (a node's scratch
    disk, another machine); an absolute path would silently point back at where it was built."""
    body = {**{key: f"images/{key}" for key in SPLITS if key in splits},
            "nc": len(names), "names": list(names)}
    text = header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
    (build / "data.yaml").write_text(text, encoding="utf-8")  # inside a building_dir: atomic as a whole
    return build / "data.yaml"
