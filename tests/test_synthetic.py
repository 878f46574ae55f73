"""The synthetic X-ray generator: determinism, label format and geometry, physics, atomic builds."""
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from helpers import ROOT, tree_hashes
from xray_exp.data import synthetic as syn
from xray_exp.errors import XrayExpError




def file_hashes(root: Path) -> dict[str, str]:
    """Images and labels, without data.yaml."""
    return {k: v for k, v in tree_hashes(root).items() if k != "data.yaml"}


def outline_box(threat: syn.Threat) -> tuple[float, float, float, float]:
    """Pixel extent (x1, y1, x2, y2) of the object's rotated outline, computed from the geometry alone."""
    a = np.radians(threat.angle)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) * threat.length
    flip = np.array([1.0, -1.0 if threat.mirror else 1.0])
    pts = np.concatenate([c for p in syn.SHAPES[syn.CLASS_NAMES[threat.cls]](threat.variant) for c in p.contours])
    pts = (pts * flip) @ rot.T + [threat.cx, threat.cy]
    return (*pts.min(0), *pts.max(0))


def label_px(label, imgsz):
    _, xc, yc, w, h = label
    return np.array([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2]) * imgsz


# ---------------------------------------------------------------- determinism and format
def test_same_seed_gives_identical_labels_and_images_other_seed_differs(tmp_path):
    a = syn.build_dataset(tmp_path / "a", 8, 3, n_test=2, imgsz=64, seed=1).parent
    b = syn.build_dataset(tmp_path / "b", 8, 3, n_test=2, imgsz=64, seed=1).parent
    c = syn.build_dataset(tmp_path / "c", 8, 3, n_test=2, imgsz=64, seed=2).parent
    ha, hb, hc = file_hashes(a), file_hashes(b), file_hashes(c)
    assert len(ha) == 2 * (8 + 3 + 2)
    assert ha == hb
    assert ha.keys() == hc.keys()
    assert all(ha[k] != hc[k] for k in ha if k.endswith(".jpg"))
    assert any(ha[k] != hc[k] for k in ha if k.endswith(".txt"))


def test_every_label_line_is_class_and_four_coordinates_in_range(tmp_path):
    root = syn.build_dataset(tmp_path / "ds", 40, 5, imgsz=64, seed=3).parent
    lines = [line for f in sorted((root / "labels").rglob("*.txt")) for line in f.read_text().splitlines()]
    assert len(lines) > 40  # ~1.5 threats per image on average
    for line in lines:
        fields = line.split()
        assert len(fields) == 5, line
        assert 0 <= int(fields[0]) < len(syn.CLASS_NAMES)
        xc, yc, w, h = map(float, fields[1:])
        assert all(0 <= v <= 1 for v in (xc, yc, w, h)), line
        assert w > 0 and h > 0
        assert xc - w / 2 >= -1e-6 and xc + w / 2 <= 1 + 1e-6 and yc - h / 2 >= -1e-6 and yc + h / 2 <= 1 + 1e-6
    empty = [f for f in (root / "labels" / "train").glob("*.txt") if not f.read_text()]
    assert empty, "some scans should hold no threat (background images)"


def test_images_decode_at_requested_size_and_data_yaml_describes_them(tmp_path):
    data_yaml = syn.build_dataset(tmp_path / "ds", 3, 2, imgsz=96, seed=0)
    data = yaml.safe_load(data_yaml.read_text())
    assert "path" not in data  # splits resolve against the yaml's folder: the dataset can be moved
    assert data["train"] == "images/train" and data["val"] == "images/val" and "test" not in data
    assert data["names"] == syn.CLASS_NAMES and data["nc"] == len(syn.CLASS_NAMES) >= 6
    assert data["synthetic"] | {} == {"generator": "xray_exp.data.synthetic", "version": syn.GENERATOR_VERSION,
                                      "n_train": 3, "n_val": 2, "n_test": 0, "imgsz": 96, "seed": 0}
    images = sorted((tmp_path / "ds" / "images").rglob("*.jpg"))
    assert len(images) == 5
    for p in images:
        image = cv2.imread(str(p))
        assert image is not None and image.shape == (96, 96, 3)
        assert (tmp_path / "ds" / "labels" / p.parent.name / f"{p.stem}.txt").is_file()


def test_worker_pool_writes_the_same_data_as_one_process(tmp_path):
    root = syn.build_dataset(tmp_path / "ds", 200, 1, imgsz=32, seed=5).parent  # 201 images: the pool path
    for i in (0, 77, 199):
        _, labels = syn.generate_image(5, "train", i, 32)
        text = "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels)
        assert (root / "labels" / "train" / f"train_{i:06d}.txt").read_text() == text


# ---------------------------------------------------------------- label geometry
@pytest.mark.parametrize("cls", range(len(syn.CLASS_NAMES)))
def test_label_box_matches_the_rotated_outline_within_1px(cls):
    rng = np.random.default_rng(cls)
    for _ in range(5):
        threat = syn.Threat(cls, cx=rng.uniform(50, 78), cy=rng.uniform(50, 78), length=rng.uniform(30, 55),
                            angle=rng.uniform(0, 360), mirror=bool(rng.random() < 0.5), variant=int(rng.integers(6)))
        label = syn.label_for(syn.render_threat(threat), cls, 128)
        assert label[0] == cls
        np.testing.assert_allclose(label_px(label, 128), outline_box(threat), atol=1.0)


def test_axis_aligned_blade_box_is_where_it_was_drawn():
    # The blade outline spans x in [-0.5, 0.5] and y in [-0.24, 0.24] lengths.
    upright = syn.label_for(syn.render_threat(syn.Threat(2, cx=50, cy=40, length=40)), 2, 128)
    np.testing.assert_allclose(label_px(upright, 128), [30, 30.4, 70, 49.6], atol=1.0)
    turned = syn.label_for(syn.render_threat(syn.Threat(2, cx=50, cy=40, length=40, angle=90)), 2, 128)
    np.testing.assert_allclose(label_px(turned, 128), [40.4, 20, 59.6, 60], atol=1.0)


def test_label_box_encloses_exactly_the_pixels_the_object_darkens():
    threats = [syn.Threat(0, cx=40, cy=50, length=50, angle=30), syn.Threat(5, cx=90, cy=85, length=40, angle=200)]
    for threat in threats:
        image, labels = syn.render([threat], 128)  # ideal detector, empty scanner: every dark pixel is the object
        ys, xs = np.nonzero(image.min(axis=2) < 250)
        drawn = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        np.testing.assert_allclose(label_px(labels[0], 128), drawn, atol=1.0)


def test_objects_at_the_edge_are_clipped_and_mostly_outside_ones_unlabelled():
    half_out = syn.Threat(0, cx=0, cy=64, length=60)  # knife along x, centred on the left edge
    label = syn.label_for(syn.render_threat(half_out), 0, 128)
    x1, y1, x2, y2 = label_px(label, 128)
    assert x1 == 0 and 29 <= x2 <= 31
    assert syn.label_for(syn.render_threat(syn.Threat(0, cx=-20, cy=64, length=60)), 0, 128) is None  # ~83 % out


# ---------------------------------------------------------------- physics
def test_compositing_an_object_over_clutter_never_brightens_a_pixel():
    rng = np.random.default_rng(0)
    clutter = (syn.attenuation(rng.uniform(0, 40, (128, 128)), syn.ORGANIC)
               + syn.attenuation(rng.uniform(0, 3, (128, 128)) * (rng.random((128, 128)) < 0.3), syn.ALUMINIUM))
    before = clutter.copy()
    for cls in range(len(syn.CLASS_NAMES)):
        layer = syn.render_threat(syn.Threat(cls, cx=64, cy=64, length=80, angle=rng.uniform(0, 360)))
        scene = syn.compose(clutter, layer.att, (layer.x0, layer.y0))
        np.testing.assert_array_equal(clutter, before)  # the input map is not modified
        assert (syn.transmission(scene) <= syn.transmission(clutter)).all()
        brightness_before = syn.false_colour(clutter).max(axis=2)  # HSV value
        brightness_after = syn.false_colour(scene).max(axis=2)
        assert (brightness_after <= brightness_before + 1e-6).all()
        covered = np.zeros((128, 128), bool)
        fy, fx = np.nonzero(layer.att.sum(axis=2) > 1e-3)
        covered[fy + layer.y0, fx + layer.x0] = True
        assert covered.sum() > 200
        assert (brightness_after[covered] < brightness_before[covered]).all()


def hue_of(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2HSV)[..., 0]


def test_metal_renders_bluer_than_mixed_and_mixed_than_organic():
    # Thicknesses with about the same brightness, so only the material differs.
    slabs = {"organic": syn.attenuation(np.full((4, 4), 60.0), syn.ORGANIC),
             "aluminium": syn.attenuation(np.full((4, 4), 12.0), syn.ALUMINIUM),
             "steel": syn.attenuation(np.full((4, 4), 2.0), syn.STEEL)}
    colour = {k: syn.false_colour(v)[0, 0] for k, v in slabs.items()}  # B, G, R
    hue = {k: float(hue_of(syn.false_colour(v))[0, 0]) for k, v in slabs.items()}
    assert colour["organic"][2] > colour["organic"][0]  # orange: more red than blue
    assert colour["steel"][0] > colour["steel"][2]  # blue
    assert np.argmax(colour["aluminium"]) == 1  # green
    assert hue["organic"] < hue["aluminium"] < hue["steel"]
    blueness = {k: c[0] / c.sum() for k, c in colour.items()}
    assert blueness["steel"] > blueness["aluminium"] > blueness["organic"]
    np.testing.assert_allclose(syn.false_colour(np.zeros((2, 2, 2), np.float32)), 1.0, atol=1e-6)  # air is white


def test_detector_noise_is_small_on_air_and_the_render_is_near_white_there():
    image, _ = syn.render([], 64, rng=np.random.default_rng(0))
    assert image.mean() > 245 and image.min() > 200


# ---------------------------------------------------------------- atomic builds
def test_two_concurrent_builds_leave_one_valid_dataset_and_no_temp_folders(tmp_path):
    start = time.time() + 3  # both processes past their imports before either starts building
    code = ("import logging, sys, time; from pathlib import Path; from xray_exp.data.synthetic import ensure_dataset; "
            "logging.basicConfig(level=logging.INFO); "
            f"time.sleep(max(0, {start} - time.time())); "
            f"print(ensure_dataset(Path(sys.argv[1]), 150, 10, imgsz=64, seed=4))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ds")], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert {o.strip() for o, _ in outs} == {str(tmp_path / "ds" / "data.yaml")}
    assert sum("built" in err and "first" in err for _, err in outs) == 1  # the two really raced; one lost
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    assert len(list((tmp_path / "ds" / "images" / "train").iterdir())) == 150
    assert file_hashes(tmp_path / "ds") == file_hashes(syn.build_dataset(tmp_path / "ref", 150, 10, imgsz=64, seed=4).parent)


def test_ensure_dataset_reuses_a_matching_build_and_refuses_other_parameters(tmp_path):
    data_yaml = syn.ensure_dataset(tmp_path / "ds", 3, 2, imgsz=64, seed=0)
    mtime = data_yaml.stat().st_mtime_ns
    assert syn.ensure_dataset(tmp_path / "ds", 3, 2, imgsz=64, seed=0) == data_yaml
    assert data_yaml.stat().st_mtime_ns == mtime
    with pytest.raises(XrayExpError, match="not the requested .*: ask for the parameters it was built with, or build this one in another folder"):
        syn.ensure_dataset(tmp_path / "ds", 3, 2, imgsz=64, seed=1)
    (tmp_path / "empty").mkdir()  # e.g. made by the user beforehand: an empty folder is filled
    assert syn.ensure_dataset(tmp_path / "empty", 3, 2, imgsz=64).is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(XrayExpError, match="no data.yaml"):
        syn.ensure_dataset(tmp_path / "other", 3, 2, imgsz=64)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_train": -1}, "n_train must be"), ({"n_val": -2}, "n_val must be"), ({"n_test": -1}, "n_test must be"),
    ({"imgsz": 31}, "imgsz must be"), ({"imgsz": 64.0}, "imgsz must be")])
def test_build_dataset_rejects_bad_numbers_and_writes_nothing(tmp_path, kwargs, message):
    args = {"n_train": 2, "n_val": 1, "imgsz": 64} | kwargs
    with pytest.raises(XrayExpError, match=message):
        syn.build_dataset(tmp_path / "ds", **args)
    assert list(tmp_path.iterdir()) == []


def test_build_dataset_replaces_a_non_empty_folder_only_with_force(tmp_path):
    syn.build_dataset(tmp_path / "ds", 2, 1, imgsz=64, seed=0)
    before = file_hashes(tmp_path / "ds")
    with pytest.raises(XrayExpError, match="not empty"):
        syn.build_dataset(tmp_path / "ds", 2, 1, imgsz=64, seed=1)
    assert file_hashes(tmp_path / "ds") == before
    syn.build_dataset(tmp_path / "ds", 2, 1, imgsz=64, seed=1, force=True)
    assert file_hashes(tmp_path / "ds") != before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_write_preview_draws_a_grid_of_the_split(tmp_path):
    data_yaml = syn.build_dataset(tmp_path / "ds", 5, 1, imgsz=64, seed=0)
    png = syn.write_preview(data_yaml, tmp_path / "p.png", n=4)
    grid = cv2.imread(str(png))
    assert grid.shape == (2 * 320, 2 * 320, 3)  # 4 tiles in 320 px cells (the audit gallery's)
    with pytest.raises(XrayExpError, match="no split .test."):
        syn.write_preview(data_yaml, tmp_path / "q.png", split="test")
