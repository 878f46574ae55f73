"""`xray-exp data synth` as a user runs it: a real subprocess, exit codes and one-line errors."""
import subprocess
from pathlib import Path

import cv2
import pytest
import yaml

from helpers import run_cli

def synth(*args: str) -> subprocess.CompletedProcess:
    return run_cli("data", "synth", *args, timeout=120)


def test_synth_builds_a_dataset_and_its_preview(tmp_path):
    r = synth("--out", str(tmp_path / "ds"), "--n-train", "4", "--n-val", "2", "--n-test", "1", "--imgsz", "64",
              "--seed", "3", "--preview", str(tmp_path / "preview.png"))
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load((tmp_path / "ds" / "data.yaml").read_text())
    assert data["synthetic"]["seed"] == 3 and data["test"] == "images/test"
    assert len(list((tmp_path / "ds" / "images" / "test").glob("*.jpg"))) == 1
    assert cv2.imread(str(tmp_path / "preview.png")) is not None


def test_preview_alone_draws_an_existing_dataset_without_rebuilding(tmp_path):
    assert synth("--out", str(tmp_path / "ds"), "--n-train", "3", "--n-val", "1", "--imgsz", "64").returncode == 0
    mtime = (tmp_path / "ds" / "data.yaml").stat().st_mtime_ns
    r = synth("--out", str(tmp_path / "ds"), "--preview", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "p.png")).shape == (2 * 320, 2 * 320, 3)  # 3 train images: a 2x2 grid
    assert (tmp_path / "ds" / "data.yaml").stat().st_mtime_ns == mtime


def test_force_replaces_an_existing_dataset(tmp_path):
    assert synth("--out", str(tmp_path / "ds"), "--n-train", "2", "--n-val", "1", "--imgsz", "64").returncode == 0
    r = synth("--out", str(tmp_path / "ds"), "--n-train", "5", "--n-val", "1", "--imgsz", "64", "--force")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "ds" / "images" / "train").iterdir())) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def bad_cases(tmp: Path):
    blocker = tmp / "a_file"
    return {
        "negative n": (["--out", str(tmp / "ds"), "--n-train", "-1", "--n-val", "2"], "n_train must be"),
        "tiny imgsz": (["--out", str(tmp / "ds"), "--n-train", "2", "--n-val", "2", "--imgsz", "16"], "imgsz must be"),
        "out under a file": (["--out", str(blocker / "ds"), "--n-train", "2", "--n-val", "1", "--imgsz", "64"],
                             "cannot write"),
        "read-only place": (["--out", "/sys/xray_exp_test/ds", "--n-train", "2", "--n-val", "1", "--imgsz", "64"],
                            "cannot write"),
        "non-empty out": (["--out", str(tmp / "full"), "--n-train", "2", "--n-val", "1", "--imgsz", "64"], "--force"),
        "missing sizes": (["--out", str(tmp / "ds"), "--n-train", "2"], "--n-val"),
        "nothing to do": (["--out", str(tmp / "ds")], "--preview"),
        "preview of nothing": (["--out", str(tmp / "ds"), "--preview", str(tmp / "p.png")], "no dataset"),
    }


@pytest.mark.parametrize("case", list(bad_cases(Path("/x"))))
def test_bad_input_fails_with_one_line_and_writes_nothing(tmp_path, case):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("user data")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args, message = bad_cases(tmp_path)[case]
    r = synth(*args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xray-exp: error:") and message in lines[0], r.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no dataset, no temp folder
    assert (tmp_path / "full" / "keep.txt").read_text() == "user data"
    assert not Path("/sys/xray_exp_test").exists()
