"""`xray-exp predict`: detections drawn on copies of the images, plus a gallery."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import grid_detector, run_module  # a checkpoint with known detections (a tiny training finds none)


@pytest.fixture(scope="module")
def weights(tiny_run, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("predict")
    run_dir, _ = tiny_run
    # Every anchor: a 32 px box, dagger at 0.6, knife at 0.05, the other classes near 0.
    return grid_detector(run_dir / "weights" / "best.pt", tmp / "grid.pt", [0.05, 0.6, 1e-4, 1e-4, 1e-4, 1e-4], box_px=32)


@pytest.mark.slow
@pytest.mark.parametrize("conf, drawn", [(0.25, True), (0.9, False)])
def test_predict_draws_detections_above_conf_and_writes_a_gallery(conf, drawn, weights, synthetic_data, tmp_path):
    source = synthetic_data.parent / "images" / "val"
    images = sorted(source.iterdir())
    out = tmp_path / "pred"
    proc = run_module("xray_exp.cli", "predict", str(source), "--weights", str(weights), "--out", str(out),
                      "--conf", str(conf))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{p.stem}.png" for p in images] + ["gallery.png"])
    for image in images:
        original, result = cv2.imread(str(image)), cv2.imread(str(out / f"{image.stem}.png"))
        assert result is not None and result.shape == original.shape
        assert (not np.array_equal(result, original)) == drawn, image.name  # boxes drawn only above conf
    gallery = cv2.imread(str(out / "gallery.png"))
    assert gallery is not None and gallery.size > 0
    assert sorted(source.iterdir()) == images  # nothing written into the source folder


@pytest.mark.slow
def test_predict_on_one_image(weights, synthetic_data, tmp_path):
    image = sorted((synthetic_data.parent / "images" / "val").iterdir())[0]
    proc = run_module("xray_exp.cli", "predict", str(image), "--weights", str(weights), "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted([f"{image.stem}.png", "gallery.png"])


@pytest.mark.parametrize("case, expected", [("missing_weights", "weights not found"),
                                            ("no_images", "no images"), ("missing_source", "no such image")])
def test_predict_bad_input_is_one_line(case, expected, tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")  # never loaded: the source is checked first
    (tmp_path / "empty").mkdir()
    source = {"missing_weights": tmp_path / "empty", "no_images": tmp_path / "empty",
              "missing_source": tmp_path / "nope"}[case]
    if case == "missing_weights":
        weights = tmp_path / "nope.pt"
        (tmp_path / "empty" / "a.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    proc = run_module("xray_exp.cli", "predict", str(source), "--weights", str(weights), "--out", str(tmp_path / "o"))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()
