"""Do the labels sit on the objects? A cheap image check for the usual conversion mistakes.

A box converted with the wrong reading (`<loc>` tokens read as x, y where they are y, x; per 1000
where they are 1024 bins; a COCO corner written as the centre; y counted from the bottom) is still a
valid YOLO row, so no per-row check can see it. The pixels can: X-ray objects attenuate, so inside a
right box the image departs from its background level and carries edges, and just outside a tight
box it does so less. Each box gets a fit score, its content minus the content of a thin ring around
it; the same box under each mistake's correction gets one too. On correct labels the box as written
fits better nearly every time; on labels made with a mistake, its correction does. When, over a
sample of images, a correction fits clearly more often than not, and the corrected boxes then sit on
the objects (they fit better than most boxes of their size put at random in the image, as correct
labels do), the labels were most likely made with that mistake, and the report says which, with the
share of boxes that favour it. Labels that sit on nothing, with no listed mistake to explain it, are
reported as such rather than given the closest name.

The rule and its measured false-alarm and detection rates are in docs/alignment.md.
"""
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from PIL import Image

from xray_exp.data.yolo import SPLITS, LabelError, YoloDataset, label_lines, load_data_yaml, parse_line
from xray_exp.errors import XrayExpError

DEFAULT_SAMPLE = 200  # images: ~2 s of CPU at 640 px (docs/alignment.md)
RING = 0.15  # the ring around a box is this share of the box's width and height on each side (>= 1 px)
MIN_SHARE = 0.6  # a correction must fit better for at least this share of the boxes it moves ...
Z = 3.0  # ... and the share must be above one half by 3 standard errors (Wilson bound): no coin flips
MIN_BOXES = 10  # fewer moved boxes than this say nothing, whatever their share
PLACEMENTS = 32  # random boxes of the same size per labelled box, the yardstick for "sits on the objects"
# Median share of random placements a box fits better than. Correct synthetic labels: 1.00; a listed
# mistake undone: 1.00; the closest listed undo of an unlisted mistake (a 180° turn): 0.50-0.62.
ON_OBJECTS = 0.8  # a named mistake must put the boxes back on the objects this well
OFF_OBJECTS = 0.7  # labels as written below this sit on nothing in particular (transposed: 0.53-0.59)
MIN_SIDE = 400  # large images are decoded at 1/2, 1/4 or 1/8 while their shorter side stays above this
GRADIENT_SIGMA = 1.0  # px: smoothing before the gradient, so JPEG and photon noise do not count as edges
LOC_SCALE = 1000 / 1024


def _transpose(b: np.ndarray) -> np.ndarray:
    return b[:, [1, 0, 3, 2]]


def _flip_v(b: np.ndarray) -> np.ndarray:
    return np.c_[b[:, 0], 1 - b[:, 1], b[:, 2:]]


def _flip_h(b: np.ndarray) -> np.ndarray:
    return np.c_[1 - b[:, 0], b[:, 1:]]


def _shift(dx: float, dy: float) -> Callable[[np.ndarray], np.ndarray]:
    """Move boxes by dx half-widths and dy half-heights."""
    return lambda b: np.c_[b[:, 0] + dx * b[:, 2] / 2, b[:, 1] + dy * b[:, 3] / 2, b[:, 2:]]


def _scale(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda b: b * factor


def _resize(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda b: np.c_[b[:, :2], b[:, 2:] * factor]


@dataclass(frozen=True)
class Mistake:
    """A conversion mistake: its name, how it happens, and `undo`, which maps labels made with it
    (rows of normalised xc, yc, w, h) back to the boxes they should have been."""

    name: str
    how: str
    undo: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    fix: str | None = None  # the command that makes correct labels, where xray_exp has one
    # A simpler change the undo must also beat. Undoing a 2.4 % scale also shrinks (or grows) every
    # box, and loose hand-drawn boxes fit better merely shrunk; only the scale moves a box in
    # proportion to its distance from the top-left, so the undo must beat resizing in place too.
    rival: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)


_CONVERT_LOC = "re-convert the export with `xray-exp data convert --format roboflow-jsonl SRC --out DIR`"
# Transposing and flipping are their own inverses; a shift or a scale is undone by its opposite.
# "Half a box": writing COCO's top-left corner as the centre (a common slip) moves a box up-left by half
# its size, treating a centre as a corner moves it down-right; a converter that slips on one axis only
# moves it along that axis. Without the one-axis shifts, such labels were named "scaled by 1024/1000"
# (shrinking towards the top-left moves a box part of the way back), so they are candidates too.
MISTAKES: tuple[Mistake, ...] = (
    Mistake("transposed", "x and y swapped, as when `<loc>` tokens (y_min, x_min, y_max, x_max) are read "
            "as x, y", _transpose, _CONVERT_LOC),
    Mistake("flipped vertically", "y counted from the bottom of the image", _flip_v),
    Mistake("flipped horizontally", "x counted from the right of the image", _flip_h),
    Mistake("shifted half a box up-left", "a top-left corner written as the centre (COCO's bbox starts "
            "at the corner)", _shift(+1, +1), "re-convert the export with `xray-exp data convert --format coco "
            "SRC --out DIR`"),
    Mistake("shifted half a box down-right", "a centre treated as the top-left corner", _shift(-1, -1)),
    Mistake("shifted half a box left", "x of the left edge written as the centre", _shift(+1, 0)),
    Mistake("shifted half a box right", "x of the centre treated as the left edge", _shift(-1, 0)),
    Mistake("shifted half a box up", "y of the top edge written as the centre", _shift(0, +1)),
    Mistake("shifted half a box down", "y of the centre treated as the top edge", _shift(0, -1)),
    Mistake("scaled by 1024/1000", "coordinates 2.4 % too far from the top-left, as when `<loc>` values "
            "are divided by 1000 instead of 1024", _scale(LOC_SCALE), _CONVERT_LOC, _resize(LOC_SCALE)),
    Mistake("scaled by 1000/1024", "coordinates 2.4 % too close to the top-left, as when per-1000 values "
            "are divided by 1024", _scale(1 / LOC_SCALE), rival=_resize(1 / LOC_SCALE)),
)
MISTAKE_NAMES = tuple(m.name for m in MISTAKES)


# ---- scoring one image -------------------------------------------------------------------------------

def content_map(gray: np.ndarray) -> np.ndarray:
    """Per-pixel evidence of an object: distance from the image's typical level plus edge strength.

    The typical level (the median) is the belt or the bag; anything that attenuates departs from it.
    The absolute distance keeps the check working on inverted renders (bright objects on black). Both
    terms are in units of their own spread over the image, so neither dominates by scale alone.
    """
    g = gray.astype(np.float32)
    median = float(np.searchsorted(np.cumsum(np.bincount(gray.ravel(), minlength=256)), gray.size / 2))
    level = np.abs(g - np.float32(median))
    smooth = cv2.GaussianBlur(g, (0, 0), GRADIENT_SIGMA)
    edges = cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    return level / np.float32(level.std() + 1e-6) + edges / np.float32(edges.std() + 1e-6)


def _pixel_boxes(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Normalised (xc, yc, w, h) rows → integer (x1, y1, x2, y2) pixel edges clipped to the image."""
    half = boxes[:, 2:] / 2
    corners = np.c_[boxes[:, :2] - half, boxes[:, :2] + half] * [w, h, w, h]
    return np.clip(np.round(corners), 0, [w, h, w, h]).astype(np.int64)


def _sums(ii: np.ndarray, r: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = r.T
    return ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]


def fit_scores(integral: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Fit of each box (normalised xc, yc, w, h) on an image's content: mean content inside minus mean
    content in the ring around it; NaN for a box with no pixels inside the image."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    inner = _pixel_boxes(boxes, w, h)
    ring = np.maximum(np.round(boxes[:, 2:] * [w, h] * RING), 1).astype(np.int64)
    outer = np.clip(inner + np.c_[-ring, ring], 0, [w, h, w, h])
    area_in = (inner[:, 2] - inner[:, 0]) * (inner[:, 3] - inner[:, 1])
    area_ring = (outer[:, 2] - outer[:, 0]) * (outer[:, 3] - outer[:, 1]) - area_in
    sum_in = _sums(integral, inner)
    sum_ring = _sums(integral, outer) - sum_in
    # A box filling the image has no ring: its content is then compared with nothing (0).
    ring_mean = np.where(area_ring > 0, sum_ring / np.maximum(area_ring, 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area_in > 0, sum_in / area_in - ring_mean, np.nan)


def placement_ranks(integral: np.ndarray, boxes: np.ndarray, fit: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """Share of PLACEMENTS random boxes of each box's size (inside the image) that fit worse than it.

    The yardstick for "sits on the objects" whatever the image: a right box beats nearly all of them,
    a box put anywhere else beats about half.
    """
    n = len(boxes)
    spots = np.repeat(boxes, PLACEMENTS, axis=0)
    room = np.clip(1 - spots[:, 2:], 0, None)  # a box wider than the image stays centred
    spots[:, :2] = spots[:, 2:] / 2 + rng.random((n * PLACEMENTS, 2)) * room
    spots[:, :2] = np.where(room > 0, spots[:, :2], 0.5)
    random_fit = fit_scores(integral, spots).reshape(n, PLACEMENTS)
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(fit), np.nan, (random_fit < fit[:, None]).mean(axis=1))


@dataclass
class ImageScores:
    """One image's boxes: their fit and placement rank as written; per mistake, which boxes its
    correction moves (`moved`: its pixel box differs, both inside the image), which of those then fit
    better (`better`), and the placement rank of the corrected boxes (`placed_fixed`)."""

    fit: np.ndarray
    placed: np.ndarray
    moved: dict[str, np.ndarray]
    better: dict[str, np.ndarray]
    placed_fixed: dict[str, np.ndarray]


def score_image(gray: np.ndarray, boxes: np.ndarray) -> ImageScores:
    """Score labelled boxes (N x 4, normalised xc, yc, w, h) on an 8-bit image (grayscale or BGR)."""
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    integral = cv2.integral(content_map(gray), sdepth=cv2.CV_64F)
    h, w = gray.shape[:2]
    n, k = len(boxes), len(MISTAKES)
    # Every candidate of every box in one array: one pass of numpy calls per image, not one per mistake.
    fixed = np.concatenate([m.undo(boxes) for m in MISTAKES] + [boxes])  # rows: mistake-major, then as written
    rivals = [m for m in MISTAKES if m.rival is not None]
    rival_boxes = np.concatenate([m.rival(boxes) for m in rivals]) if rivals else np.zeros((0, 4))
    fits = fit_scores(integral, np.concatenate([fixed, rival_boxes]))
    pixels = _pixel_boxes(np.concatenate([fixed, rival_boxes]), w, h)
    rng = np.random.default_rng(0)  # the same placements every run: the audit's verdict is reproducible
    ranks = placement_ranks(integral, fixed, fits[:len(fixed)], rng).reshape(k + 1, n)
    fit, written = fits[k * n:(k + 1) * n], pixels[k * n:(k + 1) * n]
    moved, better, placed_fixed = {}, {}, {}
    for i, m in enumerate(MISTAKES):
        rows = slice(i * n, (i + 1) * n)
        # A correction that leaves the pixel box where it was (a box on the diagonal, transposed;
        # a centred box, flipped) carries no evidence either way: it is left out, not counted as a tie.
        moves = np.any(pixels[rows] != written, axis=1) & ~np.isnan(fit) & ~np.isnan(fits[rows])
        beaten = fit
        if m.rival is not None:
            r = rivals.index(m)
            rival_rows = slice(len(fixed) + r * n, len(fixed) + (r + 1) * n)
            moves &= np.any(pixels[rows] != pixels[rival_rows], axis=1)
            beaten = np.fmax(fit, fits[rival_rows])
        with np.errstate(invalid="ignore"):
            better[m.name] = moves & (fits[rows] > beaten)
        moved[m.name] = moves
        placed_fixed[m.name] = np.where(moves, ranks[i], ranks[k])
    return ImageScores(fit, ranks[k], moved, better, placed_fixed)


# ---- the sample --------------------------------------------------------------------------------------

@dataclass
class Tally:
    """Boxes a mistake's correction moved, how many of them it made fit better, and how well the
    corrected boxes (all of them, moved or not) sit on the objects: their median placement rank."""

    moved: int = 0
    better: int = 0
    placed: float = float("nan")

    @property
    def share(self) -> float:
        return self.better / self.moved if self.moved else 0.0

    def lower_bound(self) -> float:
        """Wilson score lower bound of the share at Z standard errors."""
        n = self.moved
        if n == 0:
            return 0.0
        p, z2 = self.share, Z * Z
        centre = p + z2 / (2 * n)
        spread = Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
        return (centre - spread) / (1 + z2 / n)

    def clear(self) -> bool:
        """Does the correction fit clearly better than the labels as written?"""
        return self.moved >= MIN_BOXES and self.share >= MIN_SHARE and self.lower_bound() > 0.5

    def confirmed(self) -> bool:
        """... and does it put the boxes on the objects, as a correction of the real mistake would?"""
        return self.clear() and self.placed >= ON_OBJECTS


@dataclass(frozen=True)
class Suspicion:
    """Labels (all of them, or one class's) that do not sit on the objects. `mistake` is the listed
    mistake whose correction puts them there; None when none does (`closest` is then the listed
    mistake that came nearest, if any fitted clearly better at all)."""

    mistake: Mistake | None
    tally: Tally  # of `mistake`, or of `closest`
    placed: float  # median placement rank of the boxes as written
    cls: int | None = None  # None: the whole sample
    closest: Mistake | None = None

    def message(self, names: Sequence[str]) -> str:
        m, t = self.mistake, self.tally
        whose = "labels" if self.cls is None else f"class {self.cls} {names[self.cls]!r}: labels"
        if m is not None:
            text = (f"alignment: {whose} look {m.name} ({m.how}): {t.share:.0%} of {t.moved} sampled boxes "
                    f"fit the image better with that undone")
            return text + (f"; fix: {m.fix}" if m.fix else "; no xray-exp command undoes it: correct the converter")
        near = (f"closest: {self.closest.name}, favoured by {t.share:.0%} of {t.moved} boxes but still off the "
                f"objects once undone" if self.closest else "none fits clearly better")
        return (f"alignment: {whose} do not sit on the objects: the median box fits the image better than only "
                f"{self.placed:.0%} of random boxes of its size (correct labels: nearly all), and no listed "
                f"conversion mistake explains it ({near}); look at them with --gallery")


@dataclass
class AlignmentReport:
    """What check_alignment measured on its sample; `suspicions` are what a person must hear about."""

    images: int
    boxes: int
    fit: float  # median fit of the boxes as written (content units; > 0: on content)
    placed: float  # median placement rank of the boxes as written (correct labels: ~1)
    tallies: dict[str, Tally]  # mistake name → over all sampled boxes
    class_boxes: dict[int, int]
    class_fit: dict[int, float]
    class_placed: dict[int, float]
    class_tallies: dict[int, dict[str, Tally]]
    suspicions: list[Suspicion]
    seconds: float

    def describe(self, names: Sequence[str]) -> list[str]:
        if not self.boxes:
            return [f"alignment: no boxes in {self.images} sampled images to check"]
        top = max(MISTAKES, key=lambda m: self.tallies[m.name].share)
        t = self.tallies[top.name]
        lines = [f"alignment: {self.boxes} boxes in {self.images} sampled images ({self.seconds:.1f} s): the "
                 f"median box fits better than {self.placed:.0%} of random boxes of its size (fit "
                 f"{self.fit:.2f}); closest mistake: {top.name} ({t.share:.0%} of {t.moved} boxes favour it)"]
        per_class = []
        for c in sorted(self.class_boxes):
            top = max(MISTAKES, key=lambda m: self.class_tallies[c][m.name].share)
            per_class.append(f"{names[c]} {self.class_boxes[c]} boxes, {self.class_placed[c]:.0%} "
                             f"({top.name} {self.class_tallies[c][top.name].share:.0%})")
        lines.append("  per class: " + "; ".join(per_class))
        return lines


def _read_gray(path: Path) -> np.ndarray | None:
    """The image in grayscale, decoded at a reduced size when it is large (JPEG decodes at 1/2..1/8 for
    a fraction of the cost); None when it does not decode (the audit reports that on its own)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        with Image.open(path) as im:  # reads the header only
            short = min(im.size)
    except OSError:  # a format PIL does not know: decode it at full size
        short = 0
    flag = cv2.IMREAD_GRAYSCALE
    for factor, reduced in ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                            (2, cv2.IMREAD_REDUCED_GRAYSCALE_2)):
        if short // factor >= MIN_SIDE:
            flag = reduced
            break
    return cv2.imdecode(np.frombuffer(data, np.uint8), flag) if data else None


def _read_boxes(label: Path, nc: int) -> tuple[np.ndarray, np.ndarray]:
    """(class ids, N x 4 boxes) of the rows Ultralytics would use; bad rows are the audit's business."""
    classes, boxes = [], []
    try:
        rows = list(label_lines(label))
    except XrayExpError:
        rows = []
    for i, text in rows:
        try:
            lb = parse_line(text, i)
        except LabelError:
            continue
        box = lb.box()
        if lb.cls < nc and all(math.isfinite(v) for v in box) and box[2] > 0 and box[3] > 0:
            classes.append(lb.cls)
            boxes.append(box)
    return np.array(classes, np.int64), np.array(boxes, np.float64).reshape(-1, 4)


def sample_images(ds: YoloDataset, n: int) -> list:
    """n samples with a non-empty label file, spread evenly over all splits (the same ones every time)."""
    pool = [s for split in SPLITS if split in ds.sources for s in ds.samples(split)
            if s.label.is_file() and s.label.stat().st_size > 0]
    if len(pool) <= n:
        return pool
    return [pool[(k * len(pool)) // n] for k in range(n)]


def check_alignment(data: str | Path | YoloDataset, sample: int = DEFAULT_SAMPLE) -> AlignmentReport:
    """Score the labelled boxes of `sample` images against the usual conversion mistakes."""
    if not isinstance(sample, int) or sample < 1:
        raise XrayExpError(f"alignment sample must be a whole number of images >= 1, got {sample!r}")
    ds = data if isinstance(data, YoloDataset) else load_data_yaml(data)
    start = time.perf_counter()
    images = 0
    parts: dict[str, list[np.ndarray]] = defaultdict(list)  # per-box columns, one array per image
    for s in sample_images(ds, sample):
        cls, boxes = _read_boxes(s.label, ds.nc)
        gray = _read_gray(s.image) if len(cls) else None
        if gray is None:
            continue
        images += 1
        scores = score_image(gray, boxes)
        keep = ~np.isnan(scores.fit)
        for key, column in (("cls", cls), ("fit", scores.fit), ("placed", scores.placed)):
            parts[key].append(column[keep])
        for name in MISTAKE_NAMES:
            parts[f"moved {name}"].append(scores.moved[name][keep])
            parts[f"better {name}"].append(scores.better[name][keep])
            parts[f"placed {name}"].append(scores.placed_fixed[name][keep])
    col = {k: np.concatenate(v) for k, v in parts.items()}
    cls = col.get("cls", np.zeros(0, np.int64))

    def tally(mask: np.ndarray) -> dict[str, Tally]:
        return {name: Tally(int(col[f"moved {name}"][mask].sum()), int(col[f"better {name}"][mask].sum()),
                            _median(col[f"placed {name}"][mask])) if len(cls) else Tally()
                for name in MISTAKE_NAMES}

    everything = np.ones(len(cls), bool)
    tallies = tally(everything)
    placed = _median(col["placed"]) if len(cls) else float("nan")
    class_ids = sorted(set(cls.tolist()))
    class_tallies = {c: tally(cls == c) for c in class_ids}
    class_placed = {c: _median(col["placed"][cls == c]) for c in class_ids}
    suspicions = []
    overall = _verdict(tallies, placed, len(cls))
    if overall:
        suspicions.append(overall)
    for c in class_ids:
        # A class that goes along with the dataset's own mistake adds no line, even when another
        # correction also helps it (undoing a 2.4 % scale, or a one-axis shift, moves a box part of the
        # way back from a diagonal shift) and even when it has too few boxes to be clear on its own.
        if overall and overall.mistake and class_tallies[c][overall.mistake.name].share >= MIN_SHARE:
            continue
        if found := _verdict(class_tallies[c], class_placed[c], None, c):
            suspicions.append(found)
    return AlignmentReport(
        images=images, boxes=len(cls), fit=_median(col["fit"]) if len(cls) else float("nan"), placed=placed,
        tallies=tallies, class_boxes={c: int((cls == c).sum()) for c in class_ids},
        class_fit={c: _median(col["fit"][cls == c]) for c in class_ids}, class_placed=class_placed,
        class_tallies=class_tallies, suspicions=suspicions, seconds=time.perf_counter() - start)


def _median(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if len(values) else float("nan")


def _verdict(tallies: dict[str, Tally], placed: float, boxes: int | None,
             cls: int | None = None) -> Suspicion | None:
    """The listed mistake that explains the labels (clearly better fit, boxes on the objects once
    undone; the highest share first); else, for the whole sample (boxes given), labels that sit on
    nothing. Unexplained labels are not reported per class: one class of faint objects (organic,
    thin) sits lower than the rest without being wrong, and a sample has many classes."""
    clear = sorted((m for m in MISTAKES if tallies[m.name].clear()), key=lambda m: -tallies[m.name].share)
    confirmed = [m for m in clear if tallies[m.name].confirmed()]
    if confirmed:
        return Suspicion(confirmed[0], tallies[confirmed[0].name], placed, cls)
    if boxes is None or boxes < MIN_BOXES or not (clear or placed < OFF_OBJECTS):
        return None
    closest = clear[0] if clear else None
    nearest = closest or max(MISTAKES, key=lambda m: tallies[m.name].share)
    return Suspicion(None, tallies[nearest.name], placed, cls, closest)
