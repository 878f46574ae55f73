"""A user's own config groups and presets, kept outside the package: Hydra's `--config-dir` for a run,
`hydra.searchpath=[file://...]` for anything that composes (also `xray-exp sweep`). Trained on by name."""
import json

import pytest

from helpers import run_cli, run_train

# The tiny training without experiment=demo, whose dataset settings would override the user's preset.
TINY = ["model=yolov8n", "imgsz=64", "epochs=1", "batch=16", "device=cpu", "workers=0",
        "augmentation.close_mosaic=0", "monitor.gates=[]"]


@pytest.fixture
def user_conf(tmp_path, synthetic_data):
    """A config dir with a dataset preset (an existing YOLO dataset) and a search preset built on path_a."""
    conf = tmp_path / "my_conf"
    (conf / "dataset").mkdir(parents=True)
    (conf / "dataset" / "bags.yaml").write_text(
        f"name: bags\ndata: {synthetic_data}\nbuild: null\nhint: 'our scanner export, see the wiki'\n")
    (conf / "search").mkdir()
    (conf / "search" / "bags.yaml").write_text(
        "# @package _global_\ndefaults:\n  - path_a\nhydra:\n  sweeper:\n    study_name: bags\n    n_trials: 1\n")
    return conf


def test_a_user_dataset_preset_composes_by_name_with_config_dir(user_conf, tmp_path):
    proc = run_train("--config-dir", user_conf, "dataset=bags", "--cfg", "job", "-p", "dataset", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "name: bags" in proc.stdout


def test_an_unknown_user_preset_names_the_group(tmp_path):
    proc = run_train("dataset=bags", "--cfg", "job", cwd=tmp_path)  # no --config-dir: the package has none
    assert proc.returncode != 0 and "dataset" in proc.stderr and "bags" in proc.stderr


def test_generic_yolo_preset_takes_any_data_yaml(synthetic_data, tmp_path):
    proc = run_train("dataset=yolo", f"dataset.data={synthetic_data}", "--cfg", "job", "-p", "dataset.data", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == str(synthetic_data)
    missing = run_train("dataset=yolo", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "dataset 'yolo'" in missing.stderr and "dataset.data=path/to/your/data.yaml" in missing.stderr


@pytest.mark.slow
def test_train_on_a_user_dataset_by_name_with_xray_exp_sweep(user_conf, synthetic_data, tmp_path):
    # xray-exp sweep composes the plan itself and hands the same overrides to its worker, which trains.
    proc = run_cli("sweep", "--workers", "1", f"hydra.searchpath=[file://{user_conf}]", "search=bags", "dataset=bags",
                   *TINY, "hydra/sweeper/pruner=none", cwd=tmp_path)
    sweep_dir = tmp_path / "outputs" / "sweeps" / "bags"  # the user's search preset names the study
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert record["data"] == str(synthetic_data) and record["epochs_completed"] == 1
    assert (sweep_dir / "study.db").is_file()
