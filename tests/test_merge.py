"""Merge (Path B): class union by name, remapped ids, both split layouts, links, atomic output."""
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from helpers import FIXTURES, tree_hashes
from xray_exp.data.merge import load_aliases, merge_datasets, plan_merge, write_merge
from xray_exp.errors import XrayExpError

FIXTURE = FIXTURES / "cargoxray_labels"
LUGGAGE_NAMES = ["blade", "Cans", "CartonDrinks", "dagger", "GlassBottle", "knife", "PlasticBottle", "scissors",
                 "SprayCans", "SwissArmyKnife", "Tin", "VacuumCup"]
CARGO_NAMES = ["auto_parts", "bags", "bicycle", "car_wheels", "clothes", "fabrics", "lamps", "office_supplies",
               "shoes", "spare_parts", "tableware", "textiles", "tools", "toys", "unknown", "xray_objects"]


def placeholder_image(path: Path) -> Path:
    """One tiny JPEG; tests hard-link it thousands of times instead of writing thousands of files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), 128, np.uint8))
    return path


def luggage_stand_in(root: Path, counts: dict[str, int]) -> Path:
    """A luggage_xray-shaped dataset (images/<split> layout, Roboflow 'valid'), boxes and polygons."""
    jpg = placeholder_image(root / "placeholder.jpg")
    for split, n in counts.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            stem = f"lug_{split}_{i:05d}_jpg.rf.{i:032x}"
            os.link(jpg, root / "images" / split / f"{stem}.jpg")
            rows = [] if i % 11 == 0 else [f"{i % 12} 0.5 0.5 0.25 0.125"]
            if i % 7 == 0:
                rows.append(f"{(i + 5) % 12} 0.1 0.1 0.3 0.1 0.2 0.4")
            (root / "labels" / split / f"{stem}.txt").write_text("".join(r + "\n" for r in rows))
    (root / "data.yaml").write_text(yaml.safe_dump(
        {"train": "images/train", "val": "images/valid", "nc": 12, "names": LUGGAGE_NAMES}))
    return root / "data.yaml"


def cargoxray_with_real_labels(root: Path) -> Path:
    """The 659 real cargoxray label files in Roboflow's <split>/images layout and data.yaml quirks."""
    jpg = placeholder_image(root / "placeholder.jpg")
    for split in ("train", "valid", "test"):
        (root / split / "images").mkdir(parents=True)
        shutil.copytree(FIXTURE / split, root / split / "labels")
        for label in (root / split / "labels").iterdir():
            os.link(jpg, root / split / "images" / f"{label.stem}.jpg")
    (root / "data.yaml").write_text(yaml.safe_dump(  # Roboflow writes ../ paths that Ultralytics retries
        {"train": "../train/images", "val": "../valid/images", "test": "../test/images", "nc": 16,
         "names": CARGO_NAMES}))
    return root / "data.yaml"


def rows_by_name(label: Path, names: list[str]) -> list[tuple[str, str]]:
    rows = [r.split(maxsplit=1) for r in label.read_text().splitlines() if r.strip()]
    return [(names[int(c)], coords) for c, coords in rows]


def small_dataset(root: Path, names: list[str], labels: dict[str, dict[str, str]], layout: str = "images/split",
                  yaml_keys: bool = True) -> Path:
    """A tiny dataset: labels[split][stem] = label file text; one 8x8 image per stem."""
    jpg = placeholder_image(root / "placeholder.jpg")
    for split, files in labels.items():
        img_dir = root / "images" / split if layout == "images/split" else root / split / "images"
        for stem, text in files.items():
            img = img_dir / f"{stem}.jpg"
            img.parent.mkdir(parents=True, exist_ok=True)
            os.link(jpg, img)
            lbl = Path(str(img_dir).replace("images", "labels")) / f"{stem}.txt"
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text(text)
    data = {"names": names}
    if yaml_keys:
        rel = (lambda s: f"images/{s}") if layout == "images/split" else (lambda s: f"{s}/images")
        data.update({("val" if s == "valid" else s): rel(s) for s in labels})
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def test_merge_real_cargoxray_with_luggage_gives_guide_counts_and_same_class_names(tmp_path):
    luggage = luggage_stand_in(tmp_path / "luggage_xray", {"train": 6164, "valid": 956})
    cargo = cargoxray_with_real_labels(tmp_path / "cargoxray")
    before = tree_hashes(tmp_path / "cargoxray")

    plan = plan_merge([luggage, cargo])
    assert [plan.images(s) for s in ("train", "val", "test")] == [6626, 1088, 65]
    result = write_merge(plan, tmp_path / "merged")

    out = tmp_path / "merged"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == LUGGAGE_NAMES + CARGO_NAMES and data["nc"] == 28
    assert "path" not in data  # splits resolve against the yaml's folder: the dataset can be moved
    assert {s: len(list((out / "images" / s).iterdir())) for s in ("train", "val", "test")} == \
        {"train": 6626, "val": 1088, "test": 65}
    assert {s: len(list((out / "labels" / s).iterdir())) for s in ("train", "val", "test")} == \
        {"train": 6626, "val": 1088, "test": 65}
    assert result.linked == 7779 and result.copied == 0

    sources = {"luggage_xray": (tmp_path / "luggage_xray", "images/{}", "labels/{}", LUGGAGE_NAMES),
               "cargoxray": (tmp_path / "cargoxray", "{}/images", "{}/labels", CARGO_NAMES)}
    folder = {"train": "train", "val": "valid", "test": "test"}
    checked_rows = 0
    for split in ("train", "val", "test"):
        for label in (out / "labels" / split).iterdir():
            prefix = "luggage_xray" if label.name.startswith("luggage_xray_") else "cargoxray"
            root, _, labels_fmt, names = sources[prefix]
            original = root / labels_fmt.format(folder[split]) / label.name[len(prefix) + 1:]
            assert rows_by_name(label, data["names"]) == rows_by_name(original, names), label.name
            checked_rows += len(label.read_text().splitlines())
    luggage_rows = sum((i % 11 != 0) + (i % 7 == 0) for n in (6164, 956) for i in range(n))
    assert checked_rows == 553 + luggage_rows  # 553 rows in the real cargoxray labels
    assert tree_hashes(tmp_path / "cargoxray") == before


def test_merge_unites_classes_ignoring_case_and_through_aliases(tmp_path):
    a = small_dataset(tmp_path / "a", ["knife", "Gun", "SprayCans"],
                      {"train": {"x": "0 0.5 0.5 0.1 0.1\n1 0.2 0.2 0.1 0.1\n2 0.3 0.3 0.1 0.1\n"}})
    b = small_dataset(tmp_path / "b", ["bottle", "gun", "spray_can"],
                      {"train": {"x": "0 0.4 0.4 0.1 0.1\n1 0.6 0.6 0.2 0.2\n2 0.7 0.7 0.1 0.1\n"}})
    (tmp_path / "alias.yaml").write_text("SprayCans: spray_can\n")
    plan = plan_merge([a, b], load_aliases(tmp_path / "alias.yaml"))
    assert plan.names == ["knife", "Gun", "spray_can", "bottle"]
    assert [s.class_map for s in plan.sources] == [{0: 0, 1: 1, 2: 2}, {0: 3, 1: 1, 2: 2}]
    write_merge(plan, tmp_path / "out")
    assert (tmp_path / "out/labels/train/b_x.txt").read_text() == \
        "3 0.4 0.4 0.1 0.1\n1 0.6 0.6 0.2 0.2\n2 0.7 0.7 0.1 0.1\n"
    assert (tmp_path / "out/labels/train/a_x.txt").read_text() == \
        "0 0.5 0.5 0.1 0.1\n1 0.2 0.2 0.1 0.1\n2 0.3 0.3 0.1 0.1\n"


def test_merge_keeps_polygon_rows_and_coordinate_text_verbatim(tmp_path):
    text = "1 0.123456789 0.2 0.3 0.25 0.31 0.4 0.2 0.45\n0 0.5 0.5 1e-1 0.2\n"
    a = small_dataset(tmp_path / "a", ["x", "y"], {"train": {"p": "0 0.5 0.5 0.5 0.5\n"}})
    b = small_dataset(tmp_path / "b", ["y", "z"], {"train": {"p": text}})
    merge_datasets([a, b], tmp_path / "out")
    assert (tmp_path / "out/labels/train/b_p.txt").read_text() == \
        "2 0.123456789 0.2 0.3 0.25 0.31 0.4 0.2 0.45\n1 0.5 0.5 1e-1 0.2\n"  # y was 0, z was 1


def test_merge_finds_splits_of_both_layouts_without_split_keys(tmp_path):
    a = small_dataset(tmp_path / "a", ["x"], {"train": {"t": ""}, "valid": {"v": "0 .5 .5 .1 .1\n"}},
                      layout="split/images", yaml_keys=False)
    b = small_dataset(tmp_path / "b", ["x"], {"train": {"t": ""}, "val": {"v": ""}, "test": {"q": ""}},
                      yaml_keys=False)
    plan = plan_merge([a, b])
    assert {s: plan.images(s) for s in plan.splits} == {"train": 2, "val": 2, "test": 1}
    assert plan.backgrounds("val") == 1 and plan.instances("val") == {0: 1}


def test_merge_hard_links_images_unless_asked_to_copy(tmp_path):
    a = small_dataset(tmp_path / "a", ["x"], {"train": {"i": "0 .5 .5 .1 .1\n"}})
    src = tmp_path / "a/images/train/i.jpg"
    linked = merge_datasets([a], tmp_path / "linked")
    copied = merge_datasets([a], tmp_path / "copied", copy=True)
    assert (linked.linked, linked.copied, copied.linked, copied.copied) == (1, 0, 0, 1)
    assert os.path.samefile(src, tmp_path / "linked/images/train/a_i.jpg")
    assert not os.path.samefile(src, tmp_path / "copied/images/train/a_i.jpg")
    assert (tmp_path / "copied/images/train/a_i.jpg").read_bytes() == src.read_bytes()


def test_merge_plan_describes_class_map_and_counts_per_split(tmp_path):
    a = small_dataset(tmp_path / "a", ["knife"], {"train": {"i": "0 .5 .5 .1 .1\n0 .2 .2 .1 .1\n"}})
    b = small_dataset(tmp_path / "b", ["gun", "Knife"], {"valid": {"j": "0 .5 .5 .1 .1\n1 .5 .5 .2 .2\n"},
                                                         "train": {"k": ""}})
    text = plan_merge([a, b]).describe()
    assert "b: 0 gun -> 1, 1 Knife -> 0" in text
    assert [line.split() for line in text.splitlines() if line.split()[:2] in (["0", "knife"], ["1", "gun"])] == \
        [["0", "knife", "2", "1"], ["1", "gun", "0", "1"]]


@pytest.mark.parametrize("case, message", [
    ("no_yaml", "data.yaml not found"),
    ("no_names", "no class names"),
    ("id_too_big", "b_bad.txt:2: class id 3 >= nc 2"),
    ("bad_row", "b_bad.txt:1: 6 fields"),
])
def test_merge_bad_input_fails_before_writing_anything(tmp_path, case, message):
    a = small_dataset(tmp_path / "a", ["x"], {"train": {"i": "0 .5 .5 .1 .1\n"}})
    rows = {"id_too_big": "0 .5 .5 .1 .1\n3 .5 .5 .1 .1\n", "bad_row": "0 .5 .5 .1 .1 .7\n"}.get(case, "")
    b = small_dataset(tmp_path / "b", ["y", "z"], {"train": {"b_bad": rows}})
    if case == "no_yaml":
        b.unlink()
    if case == "no_names":
        b.write_text("train: images/train\n")
    before = tree_hashes(tmp_path)
    with pytest.raises(XrayExpError, match=message.replace(".", r"\.")):
        merge_datasets([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert tree_hashes(tmp_path) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_merge_refuses_existing_output_unless_forced(tmp_path):
    a = small_dataset(tmp_path / "a", ["x"], {"train": {"i": "0 .5 .5 .1 .1\n"}})
    (tmp_path / "out").mkdir()
    (tmp_path / "out/keep.txt").write_text("mine")
    with pytest.raises(XrayExpError, match="already exists; pass --force"):
        merge_datasets([a], tmp_path / "out")
    assert (tmp_path / "out/keep.txt").read_text() == "mine"
    merge_datasets([a], tmp_path / "out", force=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.yaml", "images", "labels"]


def test_merge_refuses_an_output_that_would_replace_a_source_even_with_force(tmp_path):
    a = small_dataset(tmp_path / "a", ["x"], {"train": {"i": "0 .5 .5 .1 .1\n"}})
    before = tree_hashes(tmp_path / "a")
    for out in (tmp_path / "a", tmp_path):
        with pytest.raises(XrayExpError, match="would replace the input"):
            merge_datasets([a], out, force=True)
    assert tree_hashes(tmp_path / "a") == before
