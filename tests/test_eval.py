"""`xray-exp eval`: Ultralytics' own numbers, unchanged, plus the guide's per-image accuracy."""
import json
from pathlib import Path

import cv2
import pytest

from helpers import ROOT, grid_detector, run_module
from xray_exp.data.yolo import load_data_yaml, read_labels
from xray_exp.analysis.evaluate import guide_accuracy

NAMES = ["knife", "dagger", "blade", "scissors", "SprayCans", "gun"]  # the synthetic data's classes
# Per-class scores of the grid detector below: knife below the guide's 0.10 (it counts for mAP, whose
# validation keeps scores >= 0.001, but not for accuracy), dagger above it, the rest nowhere.
# The CLI runs from another working directory (to see that nothing lands there) before an install.
IMPORTABLE = {"PYTHONPATH": str(ROOT)}
GRID_SCORES = [0.05, 0.6, 1e-4, 1e-4, 1e-4, 1e-4]


@pytest.fixture(scope="module")
def weights(tiny_run, tmp_path_factory) -> Path:
    """best.pt of one tiny real training (built once for this module), turned into the grid detector."""
    tmp = tmp_path_factory.mktemp("eval")
    run_dir, _ = tiny_run
    return grid_detector(run_dir / "weights" / "best.pt", tmp / "grid.pt", GRID_SCORES)


@pytest.fixture(scope="module")
def evaluated(weights, synthetic_data, tmp_path_factory) -> tuple[dict, Path, object]:
    cwd = tmp_path_factory.mktemp("cwd")
    out = cwd / "eval"
    proc = run_module("xray_exp.cli", "eval", "--weights", str(weights), "--data", str(synthetic_data),
                      "--split", "val", "--out", str(out), cwd=cwd, env=IMPORTABLE)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "eval.json").read_text()), cwd, proc


@pytest.mark.slow
def test_eval_metrics_equal_ultralytics_validation_of_the_same_weights(evaluated, weights, synthetic_data, tmp_path):
    from ultralytics import YOLO

    record, _, _ = evaluated
    direct = YOLO(str(weights)).val(data=str(synthetic_data), split="val", device="cpu", plots=False,
                                    save_dir=str(tmp_path / "direct"), verbose=False)
    assert direct.box.map50 > 0  # the comparison means something
    assert record["metrics"]["mAP50"] == pytest.approx(direct.box.map50, abs=1e-6)
    assert record["metrics"]["mAP50-95"] == pytest.approx(direct.box.map, abs=1e-6)
    assert record["metrics"]["precision"] == pytest.approx(direct.box.mp, abs=1e-6)
    assert record["metrics"]["recall"] == pytest.approx(direct.box.mr, abs=1e-6)
    expected = {NAMES[int(c)]: float(ap) for c, ap in zip(direct.box.ap_class_index, direct.box.ap50)}
    assert record["per_class_ap50"] == pytest.approx(expected, abs=1e-6)
    # The guide's 0.10 threshold must not leak into Ultralytics' validation: there it changes mAP50.
    at_guide_conf = YOLO(str(weights)).val(data=str(synthetic_data), split="val", device="cpu", plots=False,
                                           save_dir=str(tmp_path / "conf"), verbose=False, conf=0.10)
    assert abs(at_guide_conf.box.map50 - record["metrics"]["mAP50"]) > 1e-6


@pytest.mark.slow
def test_eval_writes_confusion_matrix_in_out_and_nothing_in_the_working_directory(evaluated):
    record, cwd, proc = evaluated
    image = cv2.imread(record["confusion_matrix"])
    assert image is not None and image.size > 0
    assert Path(record["confusion_matrix"]).parent == cwd / "eval"
    assert sorted(p.name for p in cwd.iterdir()) == ["eval"]  # no runs/detect/val, no weights/
    assert "dagger" in proc.stdout and "accuracy" in proc.stdout  # the per-class table


@pytest.mark.slow
def test_eval_accuracy_of_a_detector_that_always_says_dagger(evaluated, synthetic_data):
    record, _, _ = evaluated
    samples = load_data_yaml(synthetic_data).samples("val")
    truths = [{label.cls for label in read_labels(s.label)} for s in samples]
    labelled = [t for t in truths if t]
    # Every image's top detection at >= 0.10 is dagger (0.6; knife's 0.05 is below the threshold).
    assert record["images"] == len(labelled)
    assert record["background_images"] == len(truths) - len(labelled)
    assert record["background_detected"] == record["background_images"]
    assert record["detection_rate"] == 1.0
    assert record["correct"] == sum(1 in t for t in labelled)
    assert record["accuracy"] == pytest.approx(sum(1 in t for t in labelled) / len(labelled))
    for c, name in enumerate(NAMES):
        with_c = [t for t in labelled if c in t]
        assert record["per_class"][name]["images"] == len(with_c)
        assert record["per_class"][name]["correct"] == sum(1 in t for t in with_c)


def test_guide_accuracy_on_a_hand_made_case():
    names = ["knife", "gun", "scissors"]
    predictions = [
        [(0, 0.9), (1, 0.3)],   # top knife, labelled knife: right
        [(1, 0.8)],             # gun, labelled knife + gun: right (one of the image's classes)
        [(2, 0.7), (0, 0.5)],   # scissors, labelled gun: wrong class
        [(0, 0.05)],            # only below 0.10: missed -> wrong
        [],                     # nothing at all: missed -> wrong
        [(1, 0.10)],            # exactly at the threshold counts: right
        [(1, 0.04), (2, 0.2)],  # gun is below 0.10, so the top is scissors: right
        [(0, 0.6)],             # background image with a detection: a false alarm, not in accuracy
        [],                     # background image, nothing: not in accuracy
    ]
    truths = [{0}, {0, 1}, {1}, {0}, {2}, {1}, {2}, set(), set()]
    acc = guide_accuracy(predictions, truths, names, conf=0.10)
    assert (acc.images, acc.correct, acc.detected) == (7, 4, 5)
    assert acc.accuracy == pytest.approx(4 / 7)
    assert acc.detection_rate == pytest.approx(5 / 7)
    assert (acc.background_images, acc.background_detected) == (2, 1)
    assert acc.per_class == {
        "knife": {"images": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)},
        "gun": {"images": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)},
        "scissors": {"images": 2, "correct": 1, "accuracy": 0.5},
    }


def test_guide_accuracy_without_labelled_images_is_none():
    acc = guide_accuracy([[(0, 0.9)]], [set()], ["knife"])
    assert acc.accuracy is None and acc.detection_rate is None and acc.per_class["knife"]["accuracy"] is None


@pytest.mark.slow
@pytest.mark.parametrize("case, expected", [
    ("missing_weights", "weights not found"),
    ("no_names", "no class names"),
    ("no_test_split", "no 'test' split"),
])
def test_eval_bad_input_is_one_line(case, expected, weights, synthetic_data, tmp_path):
    args = ["--weights", str(weights), "--data", str(synthetic_data), "--out", str(tmp_path / "out")]
    if case == "missing_weights":
        args[1] = str(tmp_path / "nope.pt")
    elif case == "no_names":
        bad = tmp_path / "data.yaml"
        bad.write_text(f"path: {synthetic_data.parent}\ntrain: images/train\nval: images/val\n")
        args[3] = str(bad)
    else:
        args += ["--split", "test"]  # the tiny dataset has n_test = 0
    proc = run_module("xray_exp.cli", "eval", *args, cwd=tmp_path, env=IMPORTABLE)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()
