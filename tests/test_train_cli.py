"""`python -m xray_exp` end to end: real Ultralytics trainings on tiny synthetic data, as subprocesses."""
import csv
import json
import math
import re
import shutil
import time
from pathlib import Path

import pytest

from helpers import ROOT, run_train
from xray_exp.data.synthetic import CLASS_NAMES

pytestmark = pytest.mark.slow


def returned_value(output: str, objective: str = "mAP50") -> float:
    """The objective the process reported as its result (its last log line)."""
    found = re.findall(rf"\b{re.escape(objective)}=([-+0-9.eE]+|nan) \(best epoch", output)
    assert found, output[-2000:]
    return float(found[-1])


def results_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "results.csv") as f:
        return [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]


def test_run_writes_ultralytics_outputs_into_the_hydra_run_dir(tiny_run):
    run_dir, _ = tiny_run
    assert len(results_rows(run_dir)) == 2  # one row per epoch
    assert (run_dir / "weights" / "best.pt").is_file() and (run_dir / "weights" / "last.pt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()


def test_metrics_json_objective_is_what_the_process_returned(tiny_run):
    run_dir, output = tiny_run
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["objective"] == "mAP50"
    assert math.isfinite(m["value"]) and 0.0 <= m["value"] <= 1.0
    assert m["value"] == returned_value(output)
    assert m["value"] == m["metrics"]["mAP50"]
    assert (m["epochs_completed"], m["stop_reason"]) == (2, "completed")
    assert m["resolved"]["optimizer"] == "AdamW" and m["resolved"]["lr0"] == 0.002
    assert m["versions"]["ultralytics"].startswith("8.4")
    assert m["train_images_per_s"] > 0 and m["wall_s"] > 0
    assert set(m["per_class_ap50"]) <= set(CLASS_NAMES)


@pytest.mark.slow
def test_ultralytics_time_limit_is_reported_as_time_not_patience(tiny_overrides, tmp_path):
    """Ultralytics' `time` (hours) ends training on the clock: that is not an early stop by patience."""
    proc = run_train(*tiny_overrides, "epochs=3", "+ultralytics.time=0.00001", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["epochs_completed"] < 3 and m["stop_reason"] == "time"


def test_best_epoch_is_the_epoch_with_the_best_objective(tiny_run):
    run_dir, _ = tiny_run
    m = json.loads((run_dir / "metrics.json").read_text())
    column = [float(r["metrics/mAP50(B)"]) for r in results_rows(run_dir)]
    assert m["history"] == pytest.approx(column, abs=1e-5)
    # Ultralytics writes best.pt whenever an epoch equals the best: the last of equal maxima.
    assert m["best_epoch"] == max(range(len(column)), key=lambda i: (column[i], i)) + 1


def test_nothing_is_written_to_the_working_directory(tiny_run, tmp_path, tiny_overrides):
    """Offline and tidy: a run started in an empty folder leaves only its run folder there."""
    proc = run_train(*tiny_overrides, "epochs=1", "hydra.run.dir=run", cwd=tmp_path,
                      env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_auto_optimizer_warns_before_training_and_strict_refuses(tiny_overrides, tmp_path):
    args = [*tiny_overrides, "optimizer=auto", "lr.lr0=0.005", "epochs=1"]
    proc = run_train(*args, f"hydra.run.dir={tmp_path / 'warn'}", merge_output=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = proc.stdout
    warning = out.find("guard: lr.lr0=0.005: ignored under optimizer=auto")
    assert warning != -1 and warning < out.find("Starting training")
    m = json.loads((tmp_path / "warn" / "metrics.json").read_text())
    assert any("optimizer=auto" in line for line in m["ignored"])
    assert m["resolved"]["lr0"] != 0.005  # what Ultralytics really used

    strict = run_train(*args, "guards.strict=true", f"hydra.run.dir={tmp_path / 'strict'}")
    assert strict.returncode != 0
    assert "guards.strict=true: lr.lr0=0.005: ignored under optimizer=auto" in strict.stderr
    assert not (tmp_path / "strict" / "results.csv").exists()  # refused before any epoch
    refused = json.loads((tmp_path / "strict" / "metrics.json").read_text())
    assert (refused["stop_reason"], refused["value"], refused["epochs_completed"]) == ("failed", None, 0)
    assert refused["error"].startswith("guards.strict=true: lr.lr0=0.005")


def test_guard_lists_every_setting_that_cannot_act(tiny_overrides, tmp_path):
    proc = run_train(*tiny_overrides, "augmentation=aggressive", "+ultralytics.dropout=0.1",
                     "augmentation.copy_paste=0.3", "augmentation.close_mosaic=10", "guards.strict=true",
                     f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    for needle in ("guard: dropout=0.1: no effect on detection", "guard: augmentation.copy_paste=0.3: needs polygon",
                   "guard: augmentation.mosaic=1.0: never used", "guard: augmentation.mixup=0.1: never used",
                   "guard: augmentation.hsv_h=0.015"):
        assert needle in proc.stdout + proc.stderr


def test_typo_in_a_key_fails_with_the_closest_name():
    proc = run_train("lr.lr00=1")
    assert proc.returncode != 0
    assert proc.stderr.strip() == "xray_exp: error: unknown key 'lr.lr00'; did you mean 'lr0'?"


def test_absent_explicit_weights_fail_at_once_naming_the_file(tiny_overrides, tmp_path):
    missing = tmp_path / "nowhere" / "yolov8n.pt"
    started = time.perf_counter()
    proc = run_train(*tiny_overrides, f"model.weights={missing}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert time.perf_counter() - started < 30
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xray_exp: error:")]
    assert len(errors) == 1 and str(missing) in errors[0]
    assert not (tmp_path / "run" / "weights").exists()


def test_missing_dataset_names_the_data_yaml_and_the_build_command(tmp_path):
    proc = run_train("dataset=luggage_xray", f"dataset.data={tmp_path}/absent/data.yaml", "model=yolov8n",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert f"{tmp_path}/absent/data.yaml not found; build it with: xray-exp data convert" in proc.stderr


def test_weights_auto_picks_up_models_dir(tiny_run, tiny_overrides, tmp_path):
    """A user drops COCO weights into models/<name>.pt: auto fine-tunes from them (here: a tiny run's best.pt)."""
    run_dir, _ = tiny_run
    (tmp_path / "models").mkdir()
    shutil.copy(run_dir / "weights" / "best.pt", tmp_path / "models" / "yolov8n.pt")
    # experiment=demo (the tiny settings' base) trains from scratch on purpose: ask for auto, as a user does.
    proc = run_train(*tiny_overrides, "model.weights=auto", "epochs=1", "hydra.run.dir=run", cwd=tmp_path,
                      env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["weights"] == str(tmp_path / "models" / "yolov8n.pt")
    assert "Transferred" in proc.stdout + proc.stderr  # Ultralytics loaded the checkpoint's tensors
