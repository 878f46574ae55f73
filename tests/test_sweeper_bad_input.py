"""Bad input to the xray_optuna sweeper: one line on stderr naming the culprit, exit code 2, no traceback
(unless HYDRA_FULL_ERROR=1), and the sweep folder byte for byte as it was.

Every case runs the stub app (tests/stub_app) in this process against a copy of a finished one-trial sweep,
so "inputs unchanged" covers the study too.
"""
import shutil
from pathlib import Path
from typing import Iterator

import optuna
import pytest
from optuna.trial import TrialState

from helpers import run_cli, tree_hashes
from stub_app import memory_dir, run_stub
from xray_exp.errors import XrayExpError
from xray_exp.study import STORAGE_FILE, default_storage


def truncate(size: int):
    def corrupt(sweep_dir: Path) -> None:
        db = sweep_dir / STORAGE_FILE
        db.write_bytes(db.read_bytes()[:size])
    return corrupt


def garbage(sweep_dir: Path) -> None:
    (sweep_dir / STORAGE_FILE).write_text("trial,value\n0,0.5\n")


def delete(sweep_dir: Path) -> None:
    (sweep_dir / STORAGE_FILE).unlink()


def stray_folder(sweep_dir: Path) -> None:
    (sweep_dir / "5").mkdir()


# id: (overrides, a change to the finished sweep folder first, what the one line must say)
CASES = {
    "params-parse-error": (["hydra.sweeper.params.x='interval(0.1)'"], None,
                           ["search space 'x=interval(0.1)'", "missing a required argument: 'end'"]),
    "log-interval-from-0": (["x=tag(log,interval(0,1))"], None,
                            ["search space 'x=tag(log,interval(0,1))'", "must be larger than 0"]),
    "n_trials-0": (["hydra.sweeper.n_trials=0"], None, ["hydra.sweeper.n_trials must be at least 1", "got 0"]),
    "n_trials-negative": (["hydra.sweeper.n_trials=-3"], None, ["hydra.sweeper.n_trials must be at least 1"]),
    "n_jobs": (["hydra.sweeper.n_jobs=2"], None, ["n_jobs=1", "xray-exp sweep --workers"]),
    "two-directions": (["hydra.sweeper.direction=[maximize,minimize]"], None, ["one objective"]),
    "pruner-not-allowed": (["hydra.sweeper.pruner._target_=os.getpid"], None,
                           ["refusing pruner spec naming _target_ 'os.getpid'"]),
    "storage-url": (["hydra.sweeper.storage=nosuch://host/db"], None,
                    ["nosuch://host/db: cannot open as an Optuna study storage"]),
    "truncated-study-db": ([], truncate(8192), ["{db}: cannot open as an Optuna study storage", "malformed"]),
    "empty-study-db": ([], truncate(0), ["{db} is empty, but {dir} holds job folders [0]"]),
    "missing-study-db": ([], delete, ["{db} does not exist, but {dir} holds job folders [0]"]),
    "not-a-study-db": ([], garbage, ["{db} is not an SQLite database"]),
    "stray-job-folder": ([], stray_folder, ["{dir} holds job folders [5] that study 'stub' in {db} does not know"]),
}


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Iterator[Path]:
    with memory_dir(tmp_path_factory.mktemp("finished")) as folder:
        assert run_stub(f"hydra.sweep.dir={folder / 'sweep'}", "hydra.sweeper.n_trials=1") == 0
        yield folder / "sweep"


@pytest.mark.parametrize("overrides, change, expected", CASES.values(), ids=CASES.keys())
def test_bad_sweep_input_is_one_line_and_changes_nothing(finished_sweep, tmp_path, capsys, overrides, change, expected):
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(finished_sweep, sweep_dir)
    if change:
        change(sweep_dir)
    before = tree_hashes(sweep_dir)
    capsys.readouterr()

    code = run_stub(f"hydra.sweep.dir={sweep_dir}", *overrides)

    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xray_exp: error: "), err
    for part in expected:
        assert part.format(db=sweep_dir / STORAGE_FILE, dir=sweep_dir) in lines[0]
    assert "Traceback" not in out + err
    assert tree_hashes(sweep_dir) == before


def test_no_waiting_trial_is_left_by_n_trials_0(finished_sweep, tmp_path):
    """The stock sweeper's loop with n_trials=0 does nothing; ours used to enqueue trial 0 first."""
    sweep_dir = tmp_path / "new"
    assert run_stub(f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=0") == 2
    assert not (sweep_dir / STORAGE_FILE).exists()
    trials = optuna.load_study(study_name="stub", storage=default_storage(finished_sweep)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE]


def test_hydra_full_error_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(XrayExpError, match="n_trials must be at least 1"):
        run_stub(f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.sweeper.n_trials=0")


def test_xray_exp_sweep_with_a_bad_group_option_is_one_line(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("sweep", "--workers", "1", "search=path_a", "optimizer=nosuch", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "xray-exp: error: In 'train': Could not find 'optimizer/nosuch' (options: adamw, auto, sgd)"]
    assert not sweep_dir.exists()
