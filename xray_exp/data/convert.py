"""Convert Roboflow exports (COCO JSON, `<loc>` JSONL) into a YOLO dataset with a data.yaml.

`<loc>` tokens follow PaliGemma: `<locA><locB><locC><locD> name` is y_min, x_min, y_max, x_max, each
in 1024 bins of the image height or width (value / 1024 × size). Reading them as x, y (or per 1000)
transposes or shifts every box; the tests pin the right reading to 1 px on rendered boxes.

Both converters write the layout merge writes (images/<split>, labels/<split>, `valid` → `val`) and
build it atomically; images are hard-linked from the export (copied across file systems or on request).
"""
import base64
import binascii
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from xray_exp.data.yolo import SPLITS, FilePlacer, building_dataset, check_output_dir, split_key, write_data_yaml
from xray_exp.errors import XrayExpError

log = logging.getLogger(__name__)

FORMATS = ("coco", "roboflow-jsonl")


@dataclass
class ConvertResult:
    data_yaml: Path
    names: list[str]
    images: dict[str, int]  # split → images written
    objects: dict[str, int]  # split → label rows written
    notes: list[str] = field(default_factory=list)  # decisions a person should know about

    def describe(self) -> str:
        lines = [f"wrote {self.data_yaml} ({len(self.names)} classes: {', '.join(self.names)})"]
        lines += [f"  {s}: {self.images[s]} images, {self.objects[s]} objects" for s in SPLITS if s in self.images]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class _Image:
    """One converted image: where its bytes come from, its output name and its label rows."""

    name: str
    rows: list[str]
    path: Path | None = None
    data: bytes | None = None  # an image embedded in the export (data: URI)


def convert(fmt: str, src: str | Path, out: str | Path, images: str | Path | None = None,
            copy: bool = False, force: bool = False) -> ConvertResult:
    """Convert the export folder src into a YOLO dataset at out (the `xray-exp data convert` verb)."""
    src, out = Path(src), Path(out).resolve()
    if not src.is_dir():
        raise XrayExpError(f"{src}: export folder not found")
    check_output_dir(out, force, [src] + ([Path(images)] if images else []))
    if fmt == "coco":
        names, splits, notes = read_coco(src)
    elif fmt == "roboflow-jsonl":
        names, splits, notes = read_roboflow_jsonl(src, Path(images) if images else None)
    else:
        raise XrayExpError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return _write(names, splits, notes, out, copy, force)


def _write(names: list[str], splits: dict[str, list[_Image]], notes: list[str], out: Path, copy: bool,
           force: bool) -> ConvertResult:
    placer = FilePlacer(copy)
    present = [s for s in SPLITS if splits.get(s)]
    with building_dataset(out, force) as build:
        for split in present:
            (build / "images" / split).mkdir(parents=True)
            (build / "labels" / split).mkdir(parents=True)
            for img in splits[split]:
                dst = build / "images" / split / img.name
                if img.data is not None:
                    dst.write_bytes(img.data)
                else:
                    placer.place(img.path, dst)
                (build / "labels" / split / f"{Path(img.name).stem}.txt").write_text(
                    "".join(f"{r}\n" for r in img.rows), encoding="utf-8")
        write_data_yaml(build, names, present)
    return ConvertResult(out / "data.yaml", names, {s: len(splits[s]) for s in present},
                         {s: sum(len(i.rows) for i in splits[s]) for s in present}, notes)


def _check_unique(split: str, imgs: list[_Image]) -> None:
    stems = Counter(Path(i.name).stem for i in imgs)
    if dup := [s for s, n in stems.items() if n > 1]:
        raise XrayExpError(f"{split}: several images share the file stem {dup[0]!r}; their labels would collide")


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise XrayExpError(f"{path}: not readable JSON ({e})") from None


def _fmt(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.6f}"


def _within(path: Path, roots: list[Path]) -> bool:
    """Whether path lies in one of roots, judged on the names (`..` resolved, links not followed): an
    annotation file must not make convert read, and copy into the dataset, a file from elsewhere."""
    path = Path(os.path.normpath(os.path.abspath(path)))
    return any(path.is_relative_to(os.path.normpath(os.path.abspath(root))) for root in roots)


# ---- COCO ------------------------------------------------------------------------------------------

def _read_coco(src: Path) -> tuple[list[str], dict[str, list[_Image]], list[str]]:
    files = sorted(src.glob("*/_annotations.coco.json"))
    if not files:
        raise XrayExpError(f"{src}: no <split>/_annotations.coco.json (expected train/, valid/, test/)")
    docs = {}
    for f in files:
        key = split_key(f.parent.name)
        if key is None:
            raise XrayExpError(f"{f}: folder {f.parent.name!r} is not a split name (train, valid, val, test)")
        if key in docs:
            raise XrayExpError(f"{f}: a second annotation file for split {key}")
        doc = _load_json(f)
        if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list)
                                                for k in ("images", "annotations", "categories")):
            raise XrayExpError(f"{f}: not a COCO file (needs images, annotations and categories lists)")
        docs[key] = (f, doc)

    categories: dict[int, dict] = {}
    for f, doc in docs.values():
        for cat in doc["categories"]:
            old = categories.setdefault(cat["id"], cat)
            if old["name"] != cat["name"]:
                raise XrayExpError(f"{f}: category {cat['id']} is {cat['name']!r} here, {old['name']!r} elsewhere")
    used = {a["category_id"] for _, doc in docs.values() for a in doc["annotations"]}
    supers = {c.get("supercategory") for c in categories.values()}
    notes = []
    # Roboflow's placeholder: the dataset's own name as a category, never used, the others' supercategory.
    for cid, cat in sorted(categories.items()):
        if cid not in used and (cat.get("supercategory") in (None, "", "none") or cat["name"] in supers):
            notes.append(f"dropped Roboflow placeholder category {cid} {cat['name']!r} (no annotations)")
            del categories[cid]
    ids = sorted(categories)
    yolo_id = {cid: i for i, cid in enumerate(ids)}
    names = [categories[c]["name"] for c in ids]

    splits = {key: _coco_split(src, f, doc, yolo_id, notes) for key, (f, doc) in docs.items()}
    return names, splits, notes


def read_coco(src: Path) -> tuple[list[str], dict[str, list[_Image]], list[str]]:
    """Read `<split>/_annotations.coco.json` files (Roboflow layout, images beside the JSON)."""
    try:
        return _read_coco(src)
    except (KeyError, TypeError, ValueError) as e:  # a COCO file without a field we need
        raise XrayExpError(f"{src}: COCO annotation file lacks or mistypes a field ({type(e).__name__}: {e})") from None


def _coco_split(src: Path, f: Path, doc: dict, yolo_id: dict[int, int], notes: list[str]) -> list[_Image]:
    by_image: dict[int, list[dict]] = {}
    for ann in doc["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    images = {im["id"]: im for im in doc["images"]}
    if stray := set(by_image) - set(images):
        raise XrayExpError(f"{f}: annotations for unknown image id {min(stray)}")
    out, mixed, clipped, dropped = [], 0, 0, []
    for im in doc["images"]:
        path = f.parent / im["file_name"]
        if not _within(path, [src]):
            raise XrayExpError(f"{f}: image {im['file_name']} is outside the export folder {src}; convert reads "
                               "images only from there")
        if not path.is_file():
            raise XrayExpError(f"{f}: image {im['file_name']} not found beside it")
        w, h = float(im["width"]), float(im["height"])
        anns, boxes = [], []
        for a in by_image.get(im["id"], []):
            if a["category_id"] not in yolo_id:
                raise XrayExpError(f"{f}: annotation {a.get('id')} has unknown category {a['category_id']}")
            x, y, bw, bh = (float(v) for v in a["bbox"])
            box = _clip_box(x, y, x + bw, y + bh, w, h)
            if box is None:  # a zero-area row would train on nothing; Ultralytics would keep it
                dropped.append(a.get("id"))
                continue
            clipped += box != (x, y, x + bw, y + bh)
            anns.append(a)
            boxes.append(box)
        polys = [_largest_polygon(a.get("segmentation")) for a in anns]
        # Ultralytics drops an image whose label file mixes box and polygon rows, so it is all or none.
        if anns and all(polys):
            rows = [f"{yolo_id[a['category_id']]} " + " ".join(_fmt(v / (w if i % 2 == 0 else h))
                                                                for i, v in enumerate(p))
                    for a, p in zip(anns, polys)]
        else:
            mixed += any(polys)
            rows = [_coco_box_row(yolo_id[a["category_id"]], box, w, h) for a, box in zip(anns, boxes)]
        out.append(_Image(Path(im["file_name"]).name, rows, path=path))
    if mixed:
        notes.append(f"{f}: {mixed} images with polygons on only some objects kept as boxes")
    if clipped:
        notes.append(f"{f}: {clipped} boxes reaching outside their image clipped to it")
    if dropped:
        notes.append(f"{f}: {len(dropped)} boxes with no area inside their image dropped (annotation id "
                     f"{', '.join(map(str, dropped[:3]))}{', ...' if len(dropped) > 3 else ''})")
    _check_unique(f.parent.name, out)
    return out


def _largest_polygon(seg) -> list[float] | None:
    """The largest polygon of a COCO segmentation (RLE masks and empty lists give None)."""
    if not isinstance(seg, list):
        return None
    polys = [p for p in seg if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
    if not polys:
        return None

    def area(p):
        xs, ys = p[0::2], p[1::2]
        return abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2
    return max(polys, key=area)


def _clip_box(x1: float, y1: float, x2: float, y2: float, w: float, h: float
              ) -> tuple[float, float, float, float] | None:
    """The box (pixels, corners) clipped to a w x h image; None when no area of it is inside."""
    box = max(x1, 0.0), max(y1, 0.0), min(x2, w), min(y2, h)
    return box if box[2] > box[0] and box[3] > box[1] else None


def _coco_box_row(cls: int, box: tuple[float, float, float, float], w: float, h: float) -> str:
    x1, y1, x2, y2 = box
    return f"{cls} {_fmt((x1 + x2) / 2 / w)} {_fmt((y1 + y2) / 2 / h)} {_fmt((x2 - x1) / w)} {_fmt((y2 - y1) / h)}"


# ---- Roboflow <loc> JSONL --------------------------------------------------------------------------

_LOC_OBJECT = re.compile(r"^<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>(?:<seg\d{3}>)*\s*(\S.*?)\s*$")
_MIME_EXT = {"image/jpeg": ".jpg", "image/jpg": ".jpg", "image/png": ".png", "image/webp": ".webp",
             "image/bmp": ".bmp"}


def parse_loc_objects(text: str) -> list[tuple[str, float, float, float, float]]:
    """`<loc…>×4 name ; …` → [(name, x_min, y_min, x_max, y_max)] normalised to [0, 1].

    PaliGemma order is y_min, x_min, y_max, x_max in 1024 bins; raises ValueError on anything else.
    """
    objects = []
    for part in text.split(";"):
        if not part.strip():
            continue
        m = _LOC_OBJECT.match(part.strip())
        if not m:
            raise ValueError(f"not '<loc><loc><loc><loc> name': {part.strip()[:60]!r}")
        y1, x1, y2, x2 = (int(v) for v in m.groups()[:4])
        if max(y1, x1, y2, x2) > 1023 or y2 < y1 or x2 < x1:
            raise ValueError(f"loc values must be 0..1023 with min <= max (y1 x1 y2 x2): {part.strip()[:60]!r}")
        objects.append((m.group(5), x1 / 1024, y1 / 1024, x2 / 1024, y2 / 1024))
    return objects


def _detect_names(text: str) -> list[str]:
    """Class names a `detect a ; b` prompt lists (they count even when no image shows them)."""
    text = text.strip()
    if not text.lower().startswith("detect "):
        return []
    return [n.strip() for n in text[7:].split(";") if n.strip()]


def read_roboflow_jsonl(src: Path, images_dir: Path | None) -> tuple[list[str], dict[str, list[_Image]], list[str]]:
    """Read one `*.jsonl` per split (split named in the file name), PaliGemma or OpenAI-chat flavour.

    Class ids follow the names sorted case-insensitively, Roboflow's own order for data.yaml.
    """
    files = sorted(src.rglob("*.jsonl"))
    if not files:
        raise XrayExpError(f"{src}: no *.jsonl files")
    if images_dir is not None and not images_dir.is_dir():
        raise XrayExpError(f"--images {images_dir}: folder not found")
    raw: dict[str, list[tuple[Path | None, bytes | None, str, list]]] = {}
    names: set[str] = set()
    for f in files:
        tokens = [split_key(t) for t in re.split(r"[^a-z]+", f.name.lower())]
        keys = {t for t in tokens if t}
        if len(keys) != 1:
            raise XrayExpError(f"{f}: the file name must name one split (train, valid, val or test)")
        key = keys.pop()
        if key in raw:
            raise XrayExpError(f"{f}: a second JSONL file for split {key}")
        raw[key] = []
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{f}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise XrayExpError(f"{where}: not readable JSON ({e.msg})") from None
            url, prompt, answer = _record(rec, where)
            try:
                objects = parse_loc_objects(answer)
            except ValueError as e:
                raise XrayExpError(f"{where}: {e}") from None
            names.update(_detect_names(prompt))
            names.update(o[0] for o in objects)
            path, data, name = _locate(url, f.parent, src, images_dir, where, key, lineno)
            raw[key].append((path, data, name, objects))
    ordered = sorted(names, key=lambda n: (n.casefold(), n))
    ids = {n: i for i, n in enumerate(ordered)}
    splits = {}
    for key, recs in raw.items():
        splits[key] = [_Image(name, [f"{ids[n]} {_fmt((x1 + x2) / 2)} {_fmt((y1 + y2) / 2)} {_fmt(x2 - x1)} "
                                     f"{_fmt(y2 - y1)}" for n, x1, y1, x2, y2 in objects], path, data)
                       for path, data, name, objects in recs]
        _check_unique(key, splits[key])
    return ordered, splits, []


def _record(rec, where: str) -> tuple[str, str, str]:
    """(image reference, prompt text, answer text) of a PaliGemma or OpenAI-chat record."""
    if isinstance(rec, dict) and "image" in rec and "suffix" in rec:
        return str(rec["image"]), str(rec.get("prefix", "")), str(rec["suffix"])
    if isinstance(rec, dict) and isinstance(rec.get("messages"), list):
        url, prompt, answer = None, "", None
        for msg in rec["messages"]:
            content = msg.get("content") if isinstance(msg, dict) else None
            parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
            for p in parts:
                if not isinstance(p, dict):
                    continue
                if p.get("type") == "image_url" and msg.get("role") == "user":
                    ref = p.get("image_url")
                    url = ref.get("url") if isinstance(ref, dict) else ref
                elif p.get("type") == "text" and msg.get("role") == "user":
                    prompt += str(p.get("text", ""))
                elif p.get("type") == "text" and msg.get("role") == "assistant":
                    answer = (answer or "") + str(p.get("text", ""))
        if url and answer is not None:
            return str(url), prompt, answer
        raise XrayExpError(f"{where}: chat record needs a user image_url and an assistant answer")
    raise XrayExpError(f"{where}: neither PaliGemma (image, prefix, suffix) nor chat (messages) record")


def _locate(url: str, jsonl_dir: Path, src: Path, images_dir: Path | None, where: str, split: str,
            lineno: int) -> tuple[Path | None, bytes | None, str]:
    """Find an image reference on disk (nothing is downloaded); embedded data: URIs are decoded."""
    if url.startswith("data:"):
        head, _, payload = url.partition(",")
        try:
            data = base64.b64decode(payload, validate=True)
        except binascii.Error:
            raise XrayExpError(f"{where}: embedded image is not valid base64") from None
        ext = _MIME_EXT.get(head[5:].split(";")[0].lower(), ".jpg")
        return None, data, f"{split}_{lineno:06d}{ext}"
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        name = Path(unquote(parsed.path)).name
        if images_dir is None:
            raise XrayExpError(f"{where}: image {name} is a remote URL; pass --images DIR holding {name} "
                               f"(nothing is downloaded)")
        candidates = [images_dir / name]
    else:
        rel = unquote(parsed.path) if parsed.scheme == "file" else url
        candidates = [jsonl_dir / rel, src / rel]
        if images_dir is not None:
            candidates += [images_dir / rel, images_dir / Path(rel).name]
    roots = [src] + ([images_dir] if images_dir is not None else [])
    inside = [c for c in candidates if _within(c, roots)]
    found = next((c for c in inside if c.is_file()), None)
    if not inside:
        raise XrayExpError(f"{where}: image {url[:80]!r} is outside the export folder {src}"
                           f"{' and --images ' + str(images_dir) if images_dir else ''}; convert reads images "
                           "only from there")
    if found is None:
        raise XrayExpError(f"{where}: image {Path(candidates[0]).name} not found (looked in "
                           f"{', '.join(str(c.parent) for c in inside)})")
    return found, None, found.name
