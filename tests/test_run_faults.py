"""Faults around one training, with real processes: runs started together, Ctrl-C and SIGTERM, a diverging
loss. Whatever happens, every run keeps a folder of its own and ends with a metrics.json that says how."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, run_train

pytestmark = pytest.mark.slow


def start_train(*args, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xray_exp", *map(str, args)], cwd=cwd, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def epochs_in_results(run_dir: Path) -> int:
    path = run_dir / "results.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def test_two_runs_started_in_the_same_second_keep_a_folder_each(tiny_overrides, tmp_path):
    """Both in the default outputs/runs/<date>/<time> folders, started at the top of a second so that they
    name their folders within the same second."""
    time.sleep(1 - time.time() % 1)
    procs = {lr: start_train(*tiny_overrides, "epochs=1", f"lr.lr0={lr}", cwd=tmp_path) for lr in (0.001, 0.005)}
    errors = {lr: p.communicate(timeout=600)[1] for lr, p in procs.items()}
    assert [p.returncode for p in procs.values()] == [0, 0], errors
    folders = sorted(tmp_path.glob("outputs/runs/*/*"))
    assert len(folders) == 2, folders
    for folder in folders:
        record = json.loads((folder / "metrics.json").read_text())
        assert (record["stop_reason"], record["epochs_completed"], epochs_in_results(folder)) == ("completed", 1, 1)
        # each folder holds one run's files: its own command, and the lr0 that run trained with
        overrides = (folder / ".hydra" / "overrides.yaml").read_text()
        assert f"lr.lr0={record['resolved']['lr0']}" in overrides
    assert {json.loads((f / "metrics.json").read_text())["resolved"]["lr0"] for f in folders} == {0.001, 0.005}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_in_epoch_2_leaves_metrics_json_with_stop_reason_interrupted(tiny_overrides, tmp_path, sig, code):
    run_dir = tmp_path / "run"
    proc = start_train(*tiny_overrides, "epochs=4", f"hydra.run.dir={run_dir}")
    while epochs_in_results(run_dir) < 1:  # Ultralytics writes epoch 1's row, then saves the weights
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.1)
    time.sleep(1.0)  # past epoch 1's weights and our epoch-end callback: inside epoch 2
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == code
    assert stderr.strip().splitlines()[-1] == f"xray_exp: interrupted by {sig.name}" and "Traceback" not in stderr
    record = json.loads((run_dir / "metrics.json").read_text())
    assert (record["stop_reason"], record["error"]) == ("interrupted", f"interrupted by {sig.name}")
    assert 1 <= record["epochs_completed"] < 4 and len(record["history"]) == record["epochs_completed"]
    assert record["value"] == max(record["history"]) and record["best_epoch"] >= 1  # the best so far
    assert record["metrics"]["mAP50"] is not None
    assert (run_dir / "weights" / "best.pt").is_file() and (run_dir / "weights" / "last.pt").is_file()


def test_a_diverging_run_fails_with_one_line_and_is_not_scored(tiny_overrides, tmp_path):
    proc = run_train(*tiny_overrides, "+ultralytics.box=1e38", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xray_exp: error: training diverged") and str(tmp_path) in lines[0]
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert (record["stop_reason"], record["value"]) == ("nan", None)
