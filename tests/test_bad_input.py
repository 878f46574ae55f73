"""Bad input to training, the data tools, compare, eval and predict, run as users run them (real
subprocesses): each case exits with its code, says what is wrong in one line that names the culprit,
shows no stack trace, and leaves every input byte-identical.

Most cases fail before any training, so each costs about a process start. Sweep cases live with the sweeper.
"""
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import yaml

from helpers import ROOT, run_cli, run_train, tree_hashes

TRAIN_ERROR, CLI_ERROR = "xray_exp: error: ", "xray-exp: error: "


@dataclass
class Case:
    args: list                # after `python -m xray_exp` (train) or `xray-exp` (cli)
    culprit: list[str]        # what the message line must name
    inputs: list[Path]        # files and folders that must be byte-identical afterwards
    train: bool = False
    code: int = 2
    stream: str = "stderr"    # where the message is; stderr then holds that one line only
    message_prefix: str | None = None  # default: the runner's "error: " prefix
    failed_metrics: bool = False  # a started run: its folder gets metrics.json, stop_reason=failed, the same reason
    unshare: Path | None = None   # run inside a private mount namespace with a 64 KiB tmpfs at this folder
    check: Callable[[subprocess.CompletedProcess], None] | None = None  # anything else to assert


CASES: dict[str, Callable[[Path, dict], Case]] = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@pytest.fixture(scope="module")
def world(synthetic_data, tiny_overrides, tiny_run, tmp_path_factory) -> dict:
    """What the cases share: the tiny dataset and settings, a trained run, a text file posing as weights."""
    root = tmp_path_factory.mktemp("bad_input")
    (root / "notes.pt").write_text("these are not weights\n")
    return {"data": synthetic_data, "tiny": tiny_overrides, "run": tiny_run[0],
            "best": tiny_run[0] / "weights" / "best.pt", "text_pt": root / "notes.pt"}


def snapshot(paths: list[Path]) -> dict:
    return {str(p): tree_hashes(p) if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def yolo_dataset(root: Path, names: list[str], splits: dict[str, int], size: int = 16, noise: bool = False) -> Path:
    """images/<split> + labels/<split> with n distinct images each, one box per image, and a data.yaml."""
    rng = np.random.default_rng(0)
    for k, (split, n) in enumerate(splits.items()):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for j in range(n):
            pixels = rng.integers(0, 255, (size, size, 3), np.uint8) if noise else np.full((size, size, 3), 10 * k + j,
                                                                                           np.uint8)
            cv2.imwrite(str(root / "images" / split / f"{split}{j}.png"), pixels)
            (root / "labels" / split / f"{split}{j}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"path": str(root), **{s: f"images/{s}" for s in splits},
                                                    "names": names}))
    return root / "data.yaml"


def coco_export(root: Path, images: list[dict], annotations: list[dict]) -> Path:
    """A Roboflow-style COCO export: train/_annotations.coco.json beside its images (40 x 20 px)."""
    (root / "train").mkdir(parents=True)
    for im in images:
        target = root / "train" / im["file_name"]
        if target.parent == root / "train":
            cv2.imwrite(str(target), np.zeros((im["height"], im["width"], 3), np.uint8))
    doc = {"images": images, "annotations": annotations,
           "categories": [{"id": 0, "name": "knife", "supercategory": "none"}]}
    (root / "train" / "_annotations.coco.json").write_text(json.dumps(doc))
    return root


# ---- train: python -m xray_exp ---------------------------------------------------------------------

def _train(w: dict, tmp: Path, *bad: str, culprit: list[str], **kw) -> Case:
    return Case([*w["tiny"], *bad, f"hydra.run.dir={tmp / 'run'}"], culprit, [w["data"].parent], train=True, **kw)


@case
def train_epochs_not_a_number(tmp, w):
    return _train(w, tmp, "epochs=abc", culprit=["epochs=abc"], failed_metrics=True)


@case
def train_override_that_does_not_parse(tmp, w):
    return _train(w, tmp, "epochs=(3", culprit=["epochs=(3"])


@case
def train_gate_value_not_a_number(tmp, w):
    return _train(w, tmp, "monitor.gates=[[1,abc]]", culprit=["monitor.gates", "abc"], failed_metrics=True)


@case
def train_learning_rate_not_a_number(tmp, w):
    return _train(w, tmp, "lr.lr0=fast", culprit=["lr.lr0", "fast"], failed_metrics=True)


@case
def train_negative_batch(tmp, w):
    return _train(w, tmp, "batch=-3", culprit=["batch=-3"], failed_metrics=True)


@case
def train_zero_image_size(tmp, w):
    return _train(w, tmp, "imgsz=0", culprit=["imgsz=0"], failed_metrics=True)


@case
def train_unknown_objective(tmp, w):
    return _train(w, tmp, "objective=map50", culprit=["objective=map50"], failed_metrics=True)


@case
def train_cuda_device_without_cuda(tmp, w):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    return _train(w, tmp, "device=cuda:0", culprit=["device=cuda:0"], failed_metrics=True)


@case
def train_text_file_as_weights(tmp, w):
    c = _train(w, tmp, f"model.weights={w['text_pt']}", culprit=[str(w["text_pt"]), "not an Ultralytics checkpoint"],
               failed_metrics=True)
    c.inputs.append(w["text_pt"])
    return c


@case
def train_into_a_folder_that_holds_another_run(tmp, w):
    """Refused before Hydra writes .hydra/ there: the earlier run keeps its own config, log and results."""
    return Case([*w["tiny"], f"hydra.run.dir={w['run']}"], [str(w["run"]), "already holds another run's results"],
                [w["run"], w["data"].parent], train=True)


@case
def train_synthetic_dataset_built_with_other_sizes(tmp, w):
    def first_remedy_is_not_deleting(proc):
        remedy = proc.stderr.split("not the requested", 1)[1]
        assert "delete" not in remedy.split(";")[0].lower(), proc.stderr

    return _train(w, tmp, "dataset.n_train=33", culprit=[str(w["data"].parent), "n_train=32", "n_train=33"],
                  failed_metrics=True, check=first_remedy_is_not_deleting)


# ---- data tools: xray-exp data merge|convert|audit ------------------------------------------------

@case
def merge_out_is_a_source_images_folder(tmp, w):
    src = yolo_dataset(tmp / "src", ["knife"], {"train": 2})
    return Case(["data", "merge", src, "--out", tmp / "src" / "images", "--force"],
                [str(tmp / "src" / "images"), "would replace the input"], [tmp / "src"])


@case
def merge_out_is_a_source_path_root(tmp, w):
    src = yolo_dataset(tmp / "src", ["knife"], {"train": 2})
    return Case(["data", "merge", src, "--out", tmp / "src", "--force"], [str(tmp / "src"), "would replace the input"],
                [tmp / "src"])


@case
def merge_out_inside_a_source_label_folder(tmp, w):
    src = yolo_dataset(tmp / "src", ["knife"], {"train": 2})
    return Case(["data", "merge", src, "--out", tmp / "src" / "labels" / "train" / "merged", "--yes"],
                [str(tmp / "src" / "labels" / "train" / "merged"), "is inside the input"], [tmp / "src"])


@case
def merge_out_is_the_source_yaml(tmp, w):
    src = yolo_dataset(tmp / "src", ["knife"], {"train": 2})
    return Case(["data", "merge", src, "--out", src, "--force"], [str(src), "would replace the input"], [tmp / "src"])


@case
def merge_source_with_two_classes_differing_in_case(tmp, w):
    src = yolo_dataset(tmp / "src", ["Knife", "gun", "knife"], {"train": 2})
    return Case(["data", "merge", src, "--out", tmp / "out"], [str(src), "'Knife'", "'knife'", "differ only in case"],
                [tmp / "src"], code=0, message_prefix="warning: ")


@case
def merge_copy_onto_a_full_disk(tmp, w):
    if not shutil.which("unshare") or subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                                                     capture_output=True).returncode != 0:
        pytest.skip("no private mount namespace here (unshare) for a tiny tmpfs")
    src = yolo_dataset(tmp / "src", ["knife"], {"train": 4}, size=128, noise=True)  # ~200 KB of PNGs
    (tmp / "disk").mkdir()

    def nothing_left_on_the_disk(proc):
        assert proc.stdout.splitlines()[-1] == "left on disk: ", proc.stdout[-500:]

    return Case(["data", "merge", src, "--copy", "--out", tmp / "disk" / "merged"],
                [str(tmp / "disk" / "merged"), "No space left on device", "nothing was written"], [tmp / "src"],
                unshare=tmp / "disk", check=nothing_left_on_the_disk)


@case
def convert_out_inside_the_export(tmp, w):
    """The issue's own example: --out EXPORT/train --force would have deleted the export's annotations."""
    src = coco_export(tmp / "export", [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 20}], [])
    return Case(["data", "convert", "--format", "coco", src, "--out", src / "train", "--force"],
                [str(src / "train"), "is inside the input"], [src])


@case
def convert_out_holds_the_export(tmp, w):
    src = coco_export(tmp / "exports" / "luggage", [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 20}], [])
    return Case(["data", "convert", "--format", "coco", src, "--out", tmp / "exports", "--force"],
                [str(tmp / "exports"), "would replace the input"], [src])


@case
def convert_out_is_the_images_folder(tmp, w):
    (tmp / "export").mkdir()
    (tmp / "export" / "train.jsonl").write_text("")
    (tmp / "pictures").mkdir()
    cv2.imwrite(str(tmp / "pictures" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    return Case(["data", "convert", "--format", "roboflow-jsonl", tmp / "export", "--images", tmp / "pictures",
                 "--out", tmp / "pictures", "--force"], [str(tmp / "pictures"), "would replace the input"],
                [tmp / "export", tmp / "pictures"])


@case
def convert_coco_image_outside_the_export_by_dotdot(tmp, w):
    cv2.imwrite(str(tmp / "secret.jpg"), np.zeros((20, 40, 3), np.uint8))
    src = coco_export(tmp / "export", [{"id": 1, "file_name": "../../secret.jpg", "width": 40, "height": 20}], [])
    return Case(["data", "convert", "--format", "coco", src, "--out", tmp / "out"],
                ["../../secret.jpg", "outside the export folder"], [src, tmp / "secret.jpg"],
                check=lambda proc: not (tmp / "out").exists() or pytest.fail("an output was written"))


@case
def convert_coco_image_by_absolute_name(tmp, w):
    cv2.imwrite(str(tmp / "secret.jpg"), np.zeros((20, 40, 3), np.uint8))
    src = coco_export(tmp / "export", [{"id": 1, "file_name": str(tmp / "secret.jpg"), "width": 40, "height": 20}], [])
    return Case(["data", "convert", "--format", "coco", src, "--out", tmp / "out"],
                [str(tmp / "secret.jpg"), "outside the export folder"], [src, tmp / "secret.jpg"])


@case
def convert_jsonl_image_outside_the_export(tmp, w):
    cv2.imwrite(str(tmp / "secret.jpg"), np.zeros((20, 40, 3), np.uint8))
    (tmp / "export").mkdir()
    record = {"image": "../secret.jpg", "prefix": "detect knife", "suffix": "<loc0100><loc0100><loc0500><loc0500> knife"}
    (tmp / "export" / "train.jsonl").write_text(json.dumps(record) + "\n")
    return Case(["data", "convert", "--format", "roboflow-jsonl", tmp / "export", "--out", tmp / "out"],
                ["train.jsonl:1", "../secret.jpg", "outside the export folder"], [tmp / "export", tmp / "secret.jpg"])


@case
def convert_coco_boxes_outside_the_image(tmp, w):
    """Clipped when they reach outside, dropped (and reported) when nothing of them is inside: no zero-area rows."""
    src = coco_export(tmp / "export", [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 20}], [
        {"id": 7, "image_id": 1, "category_id": 0, "bbox": [50, 5, 10, 5]},    # right of the image
        {"id": 8, "image_id": 1, "category_id": 0, "bbox": [30, 10, 20, 20]},  # reaches out: clipped to 10 x 10
        {"id": 9, "image_id": 1, "category_id": 0, "bbox": [5, 5, 0, 4]}])     # no width

    def no_zero_area_rows(proc):
        rows = (tmp / "out" / "labels" / "train" / "a.txt").read_text().splitlines()
        assert rows == ["0 0.875000 0.750000 0.250000 0.500000"], rows
        assert "1 boxes reaching outside their image clipped to it" in proc.stdout

    return Case(["data", "convert", "--format", "coco", src, "--out", tmp / "out"],
                ["2 boxes with no area inside their image dropped", "annotation id 7, 9"], [src], code=0,
                stream="stdout", message_prefix="  note: ", check=no_zero_area_rows)


@case
def audit_empty_train_split(tmp, w):
    data = yolo_dataset(tmp / "ds", ["knife"], {"train": 0, "val": 2})
    return Case(["data", "audit", data, "--no-alignment"],
                [str(tmp / "ds" / "images" / "train"), "error: the train split has no images"], [tmp / "ds"],
                stream="stdout", message_prefix=str(tmp / "ds"))


# ---- compare ----------------------------------------------------------------------------------------

@case
def compare_sort_by_an_unknown_column(tmp, w):
    return Case(["compare", w["run"], "--sort", "colour"], ["--sort colour", "not a column"], [w["run"]])


@case
def compare_a_folder_that_does_not_exist(tmp, w):
    return Case(["compare", tmp / "nowhere"], [str(tmp / "nowhere"), "not a folder"], [])


@case
def compare_a_folder_without_runs(tmp, w):
    (tmp / "empty").mkdir()
    return Case(["compare", tmp / "empty"], [str(tmp / "empty"), "no run folders"], [tmp / "empty"])


@case
def compare_a_corrupted_metrics_json_beside_a_good_run(tmp, w):
    (tmp / "runs" / "good").mkdir(parents=True)
    (tmp / "runs" / "good" / "metrics.json").write_text(json.dumps({"objective": "mAP50", "value": 0.3,
                                                                     "stop_reason": "completed"}))
    (tmp / "runs" / "broken").mkdir()
    (tmp / "runs" / "broken" / "metrics.json").write_text('{"objective": "mAP50", "val')
    return Case(["compare", tmp / "runs"], [str(tmp / "runs" / "broken"), "corrupted metrics.json"], [tmp / "runs"],
                code=0, message_prefix="skipped ")


# ---- eval and predict -----------------------------------------------------------------------------

@case
def eval_text_file_as_weights(tmp, w):
    return Case(["eval", "--weights", w["text_pt"], "--data", w["data"], "--out", tmp / "eval"],
                [str(w["text_pt"]), "not an Ultralytics checkpoint"], [w["text_pt"], w["data"].parent])


@case
def predict_text_file_as_weights(tmp, w):
    images = w["data"].parent / "images" / "val"
    return Case(["predict", images, "--weights", w["text_pt"], "--out", tmp / "pred"],
                [str(w["text_pt"]), "not an Ultralytics checkpoint"], [w["text_pt"], images])


@case
def predict_an_unreadable_image(tmp, w):
    (tmp / "scans").mkdir()
    shutil.copy(next((w["data"].parent / "images" / "val").iterdir()), tmp / "scans" / "a.jpg")
    (tmp / "scans" / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return Case(["predict", tmp / "scans", "--weights", w["best"], "--out", tmp / "pred"],
                [str(tmp / "scans" / "b.jpg"), "not a readable image"], [tmp / "scans", w["best"]])


@case
def eval_an_unreadable_image_in_the_split(tmp, w):
    shutil.copytree(w["data"].parent, tmp / "ds", ignore=shutil.ignore_patterns("*.cache"))
    bad = sorted((tmp / "ds" / "images" / "val").iterdir())[3]
    bad.write_bytes(b"truncated")
    data = tmp / "ds" / "data.yaml"
    data.write_text(data.read_text().replace(str(w["data"].parent), str(tmp / "ds")))
    return Case(["eval", "--weights", w["best"], "--data", data, "--out", tmp / "eval"],
                [str(bad), "not a readable image"], [tmp / "ds" / "images", tmp / "ds" / "labels" / "val", w["best"]])


@case
def eval_cuda_device_without_cuda(tmp, w):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    return Case(["eval", "--weights", w["best"], "--data", w["data"], "--device", "cuda:0", "--out", tmp / "eval"],
                ["device=cuda:0"], [w["best"], w["data"].parent])


@case
def eval_missing_data_yaml(tmp, w):
    return Case(["eval", "--weights", w["best"], "--data", tmp / "absent.yaml", "--out", tmp / "eval"],
                [str(tmp / "absent.yaml"), "not found"], [w["best"]])


def _run(c: Case) -> subprocess.CompletedProcess:
    if c.unshare is None:
        return (run_train if c.train else run_cli)(*c.args, timeout=300)
    # A 64 KiB tmpfs mounted in a private namespace: the disk fills, and nothing outlives the process.
    script = 'mount -t tmpfs -o size=64k tmpfs "$0" || exit 99; "$@"; rc=$?; echo "left on disk: $(ls -A "$0")"; exit $rc'
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, str(c.unshare),
                           sys.executable, "-m", "xray_exp.cli", *map(str, c.args)], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_naming_the_culprit_and_inputs_stay_as_they_were(name, world, tmp_path):
    c = CASES[name](tmp_path, world)
    before = snapshot(c.inputs)
    proc = _run(c)
    assert proc.returncode == c.code, proc.stdout[-2000:] + proc.stderr[-2000:]
    prefix = c.message_prefix or (TRAIN_ERROR if c.train else CLI_ERROR)
    if c.stream == "stderr":
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr[-3000:]
    else:
        lines = [line for line in proc.stdout.splitlines() if c.culprit[0] in line]
        assert len(lines) == 1, proc.stdout[-3000:]
    assert lines[0].startswith(prefix) and all(s in lines[0] for s in c.culprit), lines[0]
    assert "Traceback" not in proc.stderr
    assert snapshot(c.inputs) == before
    if c.failed_metrics:
        record = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert (record["stop_reason"], record["value"], record["epochs_completed"]) == ("failed", None, 0)
        assert record["error"] == lines[0].removeprefix(prefix)
    if c.check:
        c.check(proc)


def test_there_are_at_least_25_cases_across_train_data_compare_eval_and_predict():
    kinds = {name.split("_")[0] for name in CASES}
    assert len(CASES) >= 25 and kinds >= {"train", "merge", "convert", "audit", "compare", "eval", "predict"}


def test_train_itself_refuses_a_used_folder_and_writes_nothing_there(compose_train, world):
    """The check multirun jobs rely on (the Hydra callback covers single runs before Hydra writes)."""
    from xray_exp.errors import XrayExpError
    from xray_exp.run.train import train

    before = tree_hashes(world["run"], mtimes=True)
    with pytest.raises(XrayExpError, match="already holds another run's results"):
        train(compose_train(*world["tiny"]), world["run"])
    assert tree_hashes(world["run"], mtimes=True) == before
