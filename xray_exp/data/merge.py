"""Merge YOLO datasets into one (the guide's Path B): classes united by name, every label id remapped.

Two steps, so a person sees what will happen before anything is written:
`plan_merge` reads and checks every source label (bad input fails here, nothing written) and returns a
MergePlan whose `describe()` is the plan to show; `write_merge` builds the output atomically.
`merge_datasets` does both, for code that builds a merged dataset on first use.

Output layout: images/{train,val,test} and labels/{train,val,test}, data.yaml without `path:` (it
resolves against its own folder, so the dataset can be moved).
A source's `valid` folder becomes the `val` split (Ultralytics' key name). File names are
`<source name>_<original name>`, so two sources never collide and every file says where it came from.
Labels are checked for what remapping needs (row syntax, class id < nc); `xray-exp data audit` checks
the rest. Images are hard links by default: nothing is copied, and the sources stay as they are (Ultralytics only
reads images; do not edit merged images in place, that would edit the source too).
"""
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


from xray_exp.files import read_yaml
from xray_exp.data.yolo import (SPLITS, FilePlacer, Label, Sample, YoloDataset, building_dataset,
                                check_output_dir, load_data_yaml, read_labels, write_data_yaml)
from xray_exp.errors import XrayExpError

log = logging.getLogger(__name__)


@dataclass
class MergeSource:
    dataset: YoloDataset
    name: str  # prefix of its output file names
    class_map: dict[int, int]  # source class id → merged class id
    items: dict[str, list[tuple[Sample, list[Label]]]] = field(default_factory=dict)


@dataclass
class MergePlan:
    names: list[str]
    sources: list[MergeSource]

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if any(src.items.get(s) for src in self.sources)]

    def images(self, split: str) -> int:
        return sum(len(src.items.get(split, [])) for src in self.sources)

    def instances(self, split: str) -> Counter:
        """Merged class id → number of labelled objects in the split."""
        counts: Counter = Counter()
        for src in self.sources:
            for _, labels in src.items.get(split, []):
                counts.update(src.class_map[lb.cls] for lb in labels)
        return counts

    def backgrounds(self, split: str) -> int:
        return sum(not labels for src in self.sources for _, labels in src.items.get(split, []))

    def describe(self) -> str:
        """The plan as text: sources, the class map, objects per class and split."""
        splits = self.splits
        lines = [f"merge plan: {len(self.sources)} datasets -> {len(self.names)} classes"]
        for src in self.sources:
            sizes = ", ".join(f"{s} {len(src.items[s])}" for s in splits if s in src.items)
            lines.append(f"  {src.name}: {src.dataset.yaml_path} ({src.dataset.nc} classes; images: {sizes})")
        lines.append("class map (source id name -> merged id):")
        for src in self.sources:
            pairs = ", ".join(f"{i} {n} -> {src.class_map[i]}" for i, n in enumerate(src.dataset.names))
            lines.append(f"  {src.name}: {pairs}")
        width = max(len(n) for n in self.names + ["background images"])
        lines.append("objects per class and split:")
        lines.append(f"  {'id':>3} {'class':<{width}} " + " ".join(f"{s:>7}" for s in splits))
        counts = {s: self.instances(s) for s in splits}
        for i, name in enumerate(self.names):
            lines.append(f"  {i:>3} {name:<{width}} " + " ".join(f"{counts[s][i]:>7}" for s in splits))
        lines.append(f"  {'':>3} {'images':<{width}} " + " ".join(f"{self.images(s):>7}" for s in splits))
        lines.append(f"  {'':>3} {'background images':<{width}} "
                     + " ".join(f"{self.backgrounds(s):>7}" for s in splits))
        return "\n".join(lines)


@dataclass
class MergeResult:
    data_yaml: Path
    linked: int
    copied: int


def load_aliases(path: str | Path) -> dict[str, str]:
    """An alias file: a YAML mapping synonym → canonical name (`SprayCans: spray_can`), keys casefolded."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except FileNotFoundError:
        raise XrayExpError(f"{path}: alias file not found") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise XrayExpError(f"{path}: expected a mapping of synonym: canonical_name")
    return {str(k).casefold(): v for k, v in data.items()}


def plan_merge(data_yamls: Sequence[str | Path], aliases: dict[str, str] | None = None) -> MergePlan:
    """Read every source and decide the merged classes and files; raises XrayExpError on bad input.

    Classes are matched by name, ignoring case, after applying aliases (casefolded synonym →
    canonical). Order: the first dataset's classes, then each new name in order of appearance. A name
    keeps its first spelling unless an alias gives the canonical one.
    """
    if not data_yamls:
        raise XrayExpError("merge needs at least one data.yaml")
    aliases = aliases or {}
    names: list[str] = []
    index: dict[str, int] = {}  # casefolded canonical name → merged id
    sources: list[MergeSource] = []
    used: Counter = Counter()
    for path in data_yamls:
        ds = load_data_yaml(path)
        class_map = {}
        first: dict[str, int] = {}  # casefolded name → its first class id in this dataset
        for i, name in enumerate(ds.names):
            canonical = aliases.get(name.casefold(), name)
            key = canonical.casefold()
            if key not in index:
                index[key] = len(names)
                names.append(canonical)
            class_map[i] = index[key]
            j = first.setdefault(name.casefold(), i)
            if j != i:  # one source's two classes would silently become one
                log.warning(f"warning: {ds.yaml_path}: classes {j} {ds.names[j]!r} and {i} {name!r} differ only in "
                            f"case; both become merged class {index[key]} {names[index[key]]!r}")
        used[ds.name] += 1
        name = ds.name if used[ds.name] == 1 else f"{ds.name}_{used[ds.name]}"
        src = MergeSource(ds, name, class_map)
        for split in SPLITS:
            samples = ds.samples(split)
            if samples:
                src.items[split] = [(s, read_labels(s.label, ds.nc)) for s in samples]
                _check_unique_names(src, split)
        if not src.items:
            raise XrayExpError(f"{ds.yaml_path}: no images in any split")
        sources.append(src)
    return MergePlan(names, sources)


def _check_unique_names(src: MergeSource, split: str) -> None:
    seen: dict[str, Path] = {}
    for sample, _ in src.items[split]:
        stem = sample.image.stem
        if stem in seen:
            raise XrayExpError(f"{src.dataset.yaml_path}: {split} has two images with the stem {stem!r} "
                               f"({seen[stem]} and {sample.image}); their labels would collide")
        seen[stem] = sample.image


def write_merge(plan: MergePlan, out: str | Path, copy: bool = False, force: bool = False) -> MergeResult:
    """Build the merged dataset in a temp folder beside out and rename it into place."""
    out = Path(out).resolve()
    check_output_dir(out, force, [p for s in plan.sources for p in s.dataset.input_paths()])
    placer = FilePlacer(copy)
    with building_dataset(out, force) as build:
        for split in plan.splits:
            (build / "images" / split).mkdir(parents=True)
            (build / "labels" / split).mkdir(parents=True)
        for src in plan.sources:
            for split, items in src.items.items():
                for sample, labels in items:
                    stem = f"{src.name}_{sample.image.stem}"
                    placer.place(sample.image, build / "images" / split / f"{stem}{sample.image.suffix}")
                    rows = "".join(f"{lb.row(src.class_map[lb.cls])}\n" for lb in labels)
                    (build / "labels" / split / f"{stem}.txt").write_text(rows, encoding="utf-8")
        header = "".join(f"# merged from {s.name}: {s.dataset.yaml_path}\n" for s in plan.sources)
        write_data_yaml(build, plan.names, plan.splits, header)
    log.debug("merged %d images into %s (%d linked, %d copied)",
             placer.linked + placer.copied, out, placer.linked, placer.copied)
    return MergeResult(out / "data.yaml", placer.linked, placer.copied)


def check_merge_output(data_yamls: Sequence[str | Path], out: str | Path, force: bool) -> None:
    """Refuse an output that touches any source (check_output_dir), before the sources are read in full."""
    check_output_dir(Path(out), force, [p for y in data_yamls for p in load_data_yaml(y).input_paths()])


def merge_datasets(data_yamls: Sequence[str | Path], out: str | Path, alias_file: str | Path | None = None,
                   copy: bool = False, force: bool = False) -> MergeResult:
    """Plan and write in one call (no confirmation): for building a merged dataset on first use."""
    aliases = load_aliases(alias_file) if alias_file else None
    check_merge_output(data_yamls, out, force)
    return write_merge(plan_merge(data_yamls, aliases), out, copy=copy, force=force)
