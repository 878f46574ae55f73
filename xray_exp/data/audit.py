"""Audit a YOLO dataset before training on it: every label row, every image, duplicates, statistics.

Ultralytics drops a bad image with a warning and trains on (data.utils.verify_image_label), so a
broken label set trains quietly into a low mAP. Here every problem is one finding `file:line: what`:
errors are what Ultralytics drops or misreads, or what corrupts the metrics (a validation image that
is also a training image); warnings are what it tolerates but a person should look at.
A gallery (labelled boxes drawn on sample images) makes transposed or shifted labels obvious; the
alignment check (data/alignment.py) says so without anyone looking, as a warning naming the mistake.
"""
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from xray_exp.data.alignment import DEFAULT_SAMPLE as ALIGN_SAMPLE
from xray_exp.data.alignment import AlignmentReport, check_alignment
from xray_exp.data.yolo import (SPLITS, LabelError, YoloDataset, label_lines, load_data_yaml, parse_line,
                                split_key)
from xray_exp.errors import XrayExpError
from xray_exp.analysis.gallery import draw_boxes, write_grid

log = logging.getLogger(__name__)

ERROR, WARNING = "error", "warning"
COORD_TOLERANCE = 0.01  # Ultralytics accepts coordinates up to 1.01 (and boxes down to -0.01)


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int | None  # None: about the whole file
    severity: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class SplitStats:
    images: int = 0
    backgrounds: int = 0
    classes: Counter = field(default_factory=Counter)
    box_px: list[tuple[float, float]] = field(default_factory=list)  # (width, height) in pixels

    def describe(self, names: list[str]) -> list[str]:
        share = self.backgrounds / self.images if self.images else 0.0
        lines = [f"  images {self.images}, background images {self.backgrounds} ({share:.1%}), "
                 f"objects {sum(self.classes.values())}"]
        lines.append("  objects per class: " + ", ".join(f"{n} {self.classes[i]}" for i, n in enumerate(names)))
        if self.box_px:
            wh = np.array(self.box_px)
            size = np.sqrt(wh[:, 0] * wh[:, 1])
            aspect = wh[:, 0] / np.maximum(wh[:, 1], 1e-9)
            lines.append(f"  box size sqrt(w*h) px p5/median/p95: {_percentiles(size)}; "
                         f"aspect w/h p5/median/p95: {_percentiles(aspect)}")
        return lines


def _percentiles(values: np.ndarray) -> str:
    return "/".join(f"{v:.3g}" for v in np.percentile(values, [5, 50, 95]))


@dataclass
class AuditReport:
    dataset: YoloDataset
    findings: list[Finding]
    stats: dict[str, SplitStats]
    alignment: AlignmentReport | None = None  # None: the alignment check was not run

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def exit_code(self, strict: bool = False) -> int:
        """0 clean, 1 warnings (only counted with strict), 2 errors."""
        if self.errors:
            return 2
        return 1 if strict and self.warnings else 0

    def describe(self) -> str:
        """The statistics and a one-line verdict (findings are listed separately, one per line)."""
        ds = self.dataset
        lines = [f"{ds.yaml_path}: {ds.nc} classes"]
        for split, st in self.stats.items():
            lines.append(f"{split}:")
            lines += st.describe(ds.names)
        if self.alignment is not None:
            lines += self.alignment.describe(ds.names)
        lines.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        return "\n".join(lines)


def audit_dataset(data_yaml: str | Path, alignment: int | None = ALIGN_SAMPLE,
                  alignment_errors: bool = False) -> AuditReport:
    """Check every label row and image of every split; returns findings and per-split statistics.

    alignment: images sampled for the alignment check (None: skip it); its findings are warnings, or
    errors with alignment_errors (a mis-converted label set is worth stopping for under --strict).
    """
    ds = load_data_yaml(data_yaml)
    # First, so that a bad sample size fails before the long per-file pass.
    aligned = check_alignment(ds, alignment) if alignment is not None else None
    findings: list[Finding] = []
    stats: dict[str, SplitStats] = {}
    first_seen: dict[bytes, tuple[str, Path]] = {}  # image bytes digest → (split, image)
    for split in SPLITS:
        if split not in ds.sources:
            continue
        st = stats[split] = SplitStats()
        samples = ds.samples(split)
        if not samples:  # Ultralytics refuses to train on an empty train or val split
            findings.append(Finding(ds.sources[split][0], None, ERROR if split != "test" else WARNING,
                                    f"the {split} split has no images"))
        for sample in samples:
            st.images += 1
            size = _check_image(sample.image, split, first_seen, findings)
            classes = _check_labels(sample.label, ds.nc, size, st, findings)
            st.backgrounds += not classes
            st.classes.update(classes)
        paired = {s.label for s in samples}
        for folder in ds.label_folders(split):
            for txt in sorted(folder.glob("*.txt")):
                if txt not in paired:
                    findings.append(Finding(txt, None, ERROR, "label without image (Ultralytics ignores it)"))
    if aligned is not None:
        severity = ERROR if alignment_errors else WARNING
        findings += [Finding(ds.yaml_path, None, severity, s.message(ds.names)) for s in aligned.suspicions]
    return AuditReport(ds, findings, stats, aligned)


def _check_image(image: Path, split: str, first_seen: dict, findings: list[Finding]) -> tuple[int, int] | None:
    """Image exists and decodes, its bytes are not a duplicate; returns (width, height) or None."""
    try:
        data = image.read_bytes()
    except FileNotFoundError:
        findings.append(Finding(image, None, ERROR, "image missing"))
        return None
    digest = hashlib.blake2b(data, digest_size=16).digest()
    if digest in first_seen:
        other_split, other = first_seen[digest]
        if other_split == split:
            findings.append(Finding(image, None, WARNING, f"same bytes as {other} (duplicate in {split})"))
        else:
            findings.append(Finding(image, None, ERROR, f"same bytes as {other} in {other_split} "
                                                        f"(leakage between {other_split} and {split})"))
    else:
        first_seen[digest] = (split, image)
    # A reduced decode reads every JPEG block at an eighth of the cost; PIL gives the true size.
    if not data or cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        findings.append(Finding(image, None, ERROR, "image does not decode"))
        return None
    if image.suffix.lower() in (".jpg", ".jpeg") and data[-2:] != b"\xff\xd9":
        findings.append(Finding(image, None, WARNING, "truncated JPEG (Ultralytics rewrites it in place)"))
    try:
        with Image.open(image) as im:
            return im.size
    except OSError:  # a format OpenCV decodes but PIL does not: no pixel statistics for it
        return None


def _check_labels(path: Path, nc: int, size: tuple[int, int] | None, st: SplitStats,
                  findings: list[Finding]) -> list[int]:
    """Check each row; returns the class ids of the rows that Ultralytics would accept."""
    classes: list[int] = []
    rows_seen: set[str] = set()
    kinds: dict[bool, int] = {}  # is_polygon → first line of that kind
    bad = False
    try:
        rows = list(label_lines(path))
    except XrayExpError as e:
        findings.append(Finding(path, None, ERROR, str(e).removeprefix(f"{path}: ")))
        return []
    for i, text in rows:
        try:
            lb = parse_line(text, i)
        except LabelError as e:
            findings.append(Finding(path, i, ERROR, str(e)))
            bad = True
            continue
        problems = []
        if lb.cls >= nc:
            problems.append(f"class id {lb.cls} out of range 0..{nc - 1}")
        outside = [v for v in lb.coords if v < 0 or v > 1]
        if any(v < -COORD_TOLERANCE or v > 1 + COORD_TOLERANCE for v in outside):
            problems.append(f"coordinate {max(outside, key=lambda v: abs(v - 0.5)):g} outside [0, 1]")
        elif outside:
            findings.append(Finding(path, i, WARNING, f"coordinate {outside[0]:g} slightly outside [0, 1]"))
        for p in problems:
            findings.append(Finding(path, i, ERROR, p))
        bad |= bool(problems)
        _, _, w, h = lb.box()
        if w <= 0 or h <= 0:
            findings.append(Finding(path, i, WARNING, "zero-area box"))
        row = " ".join(text.split())
        if row in rows_seen:
            findings.append(Finding(path, i, WARNING, "duplicate row (Ultralytics removes it)"))
        rows_seen.add(row)
        kinds.setdefault(lb.is_polygon, i)
        if not problems:
            classes.append(lb.cls)
            if size:
                st.box_px.append((w * size[0], h * size[1]))
    if len(kinds) == 2:
        findings.append(Finding(path, max(kinds.values()), ERROR,
                                f"mixes box rows (first at line {kinds[False]}) and polygon rows (first at line "
                                f"{kinds[True]}): Ultralytics drops the image"))
        bad = True
    return [] if bad else classes


def write_gallery(data_yaml: str | Path, out_png: str | Path, n: int = 16, split: str | None = None,
                  tile_size: int = 320) -> Path:
    """Draw n images of a split (labelled ones first, spread evenly over it) with their boxes and names."""
    ds = load_data_yaml(data_yaml)
    split = split_key(split) or split if split else next(s for s in SPLITS if s in ds.sources)
    if split not in ds.sources:
        raise XrayExpError(f"{ds.yaml_path}: no split {split!r} (has {', '.join(ds.sources)})")
    samples = ds.samples(split)
    labelled = [s for s in samples if next(label_lines(s.label), None)]
    if len(labelled) < n:
        unlabelled = set(samples) - set(labelled)
        labelled += [s for s in samples if s in unlabelled]
    pool = labelled
    m = min(n, len(pool))
    picks = [pool[round(k * (len(pool) - 1) / max(m - 1, 1))] for k in range(m)]
    tiles, captions = [], []
    for s in picks:
        image = cv2.imread(str(s.image), cv2.IMREAD_COLOR)
        if image is None:
            continue
        boxes = []
        for i, text in label_lines(s.label):
            try:
                lb = parse_line(text, i)
            except LabelError:
                continue  # the audit reports it; the picture shows what can be read
            boxes.append((lb.cls, *lb.box()))
        tiles.append(draw_boxes(image, boxes, ds.names))
        captions.append(f"{split}/{s.image.name}")
    if not tiles:
        raise XrayExpError(f"{ds.yaml_path}: no readable images in {split} to draw")
    return write_grid(tiles, out_png, tile_size, captions)
