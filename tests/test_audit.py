"""Audit: every planted defect is found and named by file and line; a clean dataset passes."""
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from xray_exp.data.audit import audit_dataset, write_gallery
from xray_exp.analysis.gallery import class_color

NAMES = ["knife", "gun", "bottle"]


def clean_dataset(root: Path) -> Path:
    """Distinct noise images (no accidental duplicates), 64x48, valid boxes and a polygon, one background."""
    rng = np.random.default_rng(0)
    labels = {"train": {"a": "0 0.5 0.5 0.2 0.4\n1 0.25 0.25 0.1 0.1\n", "b": "2 0.1 0.1 0.3 0.1 0.2 0.4\n",
                        "c": "1 0.5 0.5 0.5 0.5\n0 0.6 0.6 0.1 0.1\n0 0.3 0.7 0.2 0.2\n", "bg": ""},
              "val": {"d": "0 0.5 0.5 0.2 0.2\n"}}
    for split, files in labels.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for stem, text in files.items():
            cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), rng.integers(0, 255, (48, 64, 3), np.uint8))
            (root / "labels" / split / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text(yaml.safe_dump({"path": str(root), "train": "images/train",
                                                    "val": "images/val", "names": NAMES}))
    return root / "data.yaml"


def test_clean_dataset_has_no_findings_and_reports_statistics(tmp_path):
    report = audit_dataset(clean_dataset(tmp_path))
    assert report.findings == [] and report.exit_code(strict=True) == 0
    train = report.stats["train"]
    assert (train.images, train.backgrounds) == (4, 1)
    assert train.classes == Counter({0: 3, 1: 2, 2: 1})
    # box "a" row 1: 0.2 x 0.4 of 64x48 px = 12.8 x 19.2 px
    assert train.box_px[0] == pytest.approx((12.8, 19.2))
    text = report.describe()
    assert "background images 1 (25.0%)" in text and "knife 3, gun 2, bottle 1" in text
    assert "aspect w/h" in text and text.endswith("0 errors, 0 warnings")


def test_audit_finds_each_planted_defect_with_file_and_line(tmp_path):
    data = clean_dataset(tmp_path)
    lbl, img = tmp_path / "labels", tmp_path / "images"
    (lbl / "train/a.txt").write_text("0 0.5 0.5 0.2 0.4\n3 0.25 0.25 0.1 0.1\n")  # bad id on line 2
    (lbl / "train/b.txt").write_text("2 0.1 0.1 0.3 0.1 0.2\n")  # 6 fields
    (lbl / "train/c.txt").write_text("1 0.5 0.5 0.5 0.5\n0 0.6 0.6 0.1 0.1\n0 1.3 0.7 0.2 0.2\n")
    (img / "train/c.jpg").unlink()  # ...and its image is gone: label without image
    (img / "train/bg.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    shutil.copyfile(img / "train/a.jpg", img / "val/a_again.jpg")  # leakage
    report = audit_dataset(data)
    found = {str(f).replace(str(tmp_path) + "/", "") for f in report.findings}
    assert found == {
        "labels/train/a.txt:2: error: class id 3 out of range 0..2",
        "labels/train/b.txt:1: error: 6 fields: a box row has 5 (class xc yc w h), a polygon row an odd number "
        ">= 7 (class x1 y1 x2 y2 x3 y3 ...)",
        "labels/train/c.txt: error: label without image (Ultralytics ignores it)",
        "images/train/bg.jpg: error: image does not decode",
        "images/val/a_again.jpg: error: same bytes as images/train/a.jpg in train (leakage between train and val)",
    }
    assert report.exit_code() == 2
    # c.txt has no image, so its rows are not audited as part of a sample; plant the 1.3 where one is read:
    (lbl / "train/a.txt").write_text("0 1.3 0.5 0.2 0.4\n")
    assert "labels/train/a.txt:1: error: coordinate 1.3 outside [0, 1]" in \
        {str(f).replace(str(tmp_path) + "/", "") for f in audit_dataset(data).findings}


def test_warnings_count_only_with_strict(tmp_path):
    data = clean_dataset(tmp_path)
    (tmp_path / "labels/train/a.txt").write_text("0 0.5 0.5 0.0 0.4\n0 0.5 0.5 0.0 0.4\n1 1.005 0.5 0.1 0.1\n")
    shutil.copyfile(tmp_path / "images/train/b.jpg", tmp_path / "images/train/b_copy.jpg")
    report = audit_dataset(data)
    assert [(f.line, f.severity, f.message) for f in report.findings] == [
        (1, "warning", "zero-area box"),
        (2, "warning", "zero-area box"),
        (2, "warning", "duplicate row (Ultralytics removes it)"),
        (3, "warning", "coordinate 1.005 slightly outside [0, 1]"),
        (None, "warning", f"same bytes as {tmp_path}/images/train/b.jpg (duplicate in train)"),
    ]
    assert (report.exit_code(strict=False), report.exit_code(strict=True)) == (0, 1)


def test_mixed_box_and_polygon_rows_are_an_error(tmp_path):
    data = clean_dataset(tmp_path)
    (tmp_path / "labels/train/a.txt").write_text("0 0.5 0.5 0.2 0.4\n2 0.1 0.1 0.3 0.1 0.2 0.4\n")
    (f,) = audit_dataset(data).findings
    assert (f.line, f.severity) == (2, "error") and "Ultralytics drops the image" in f.message


def test_gallery_draws_the_labelled_box_where_the_label_says(tmp_path):
    (tmp_path / "images/train").mkdir(parents=True)
    (tmp_path / "labels/train").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images/train/x.png"), np.full((48, 64, 3), 255, np.uint8))
    # left edge at x = 0.25 * 64 = 16 px, i.e. 80 px in a 320 px tile; vertical span 12..36 px -> 80..240
    (tmp_path / "labels/train/x.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "names": NAMES}))
    out = write_gallery(tmp_path / "data.yaml", tmp_path / "g.png", n=4)
    grid = cv2.imread(str(out))
    assert grid.shape == (320, 320, 3)  # one image: a 1x1 grid
    color = np.array(class_color(1), int)
    left_edge = grid[150:170, 78:86].reshape(-1, 3).astype(int)
    assert np.abs(left_edge - color).sum(axis=1).min() < 60
    transposed_edge = grid[150:170, 58:66].reshape(-1, 3).astype(int)  # where x=12/48*320 would put it
    assert np.abs(transposed_edge - color).sum(axis=1).min() > 200
