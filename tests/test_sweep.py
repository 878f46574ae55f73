"""The xray_optuna sweeper on real (tiny) trainings: records, pruning, gates, resume, failures, NaN, workers.

Every sweep runs `python -m xray_exp -m search=path_a ...` as users do, with its sweep folder in tmp_path.
The sweeper's bookkeeping on its own (resume, numbering, orphans, outcomes, tables, concurrent starts) is
tested in test_sweeper.py with a stub task that takes milliseconds.
"""
import csv
import json
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from helpers import run_cli, run_module, run_train, tree_hashes
from xray_exp.study import PRUNER_ATTR, TRIALS_FILE

PATH_A = {"lr.lr0": 0.002, "augmentation.mosaic": 0.8, "augmentation.degrees": 10.0, "lr.warmup_epochs": 5.0}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sweep_args(tiny_overrides: list[str], sweep_dir: Path, *extra: str) -> list[str]:
    return ["-m", "search=path_a", *tiny_overrides, f"hydra.sweep.dir={sweep_dir}", "hydra/sweeper/pruner=none",
            *extra]


def load_study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="path_a", storage=f"sqlite:///{sweep_dir / 'study.db'}")


def job_folders(sweep_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


def read_trials_csv(sweep_dir: Path) -> list[dict]:
    with (sweep_dir / TRIALS_FILE).open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def resumed_sweep(tiny_overrides, tmp_path_factory) -> tuple[Path, dict]:
    """A 2-trial sweep, then the same command with n_trials=4: (sweep folder, digests of jobs 0-1 before)."""
    sweep_dir = tmp_path_factory.mktemp("resumed") / "sweep"
    first = run_module("xray_exp", *sweep_args(tiny_overrides, sweep_dir, "hydra.sweeper.n_trials=2"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert job_folders(sweep_dir) == [0, 1]
    before = {n: tree_hashes(sweep_dir / str(n), mtimes=True) for n in (0, 1)}
    again = run_module("xray_exp", *sweep_args(tiny_overrides, sweep_dir, "hydra.sweeper.n_trials=4"))
    assert again.returncode == 0, again.stderr[-3000:]
    return sweep_dir, before


@pytest.mark.slow
def test_rerun_resumes_study_to_n_trials_total_and_records_every_trial(resumed_sweep):
    sweep_dir, before = resumed_sweep
    trials = load_study(sweep_dir).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert job_folders(sweep_dir) == [0, 1, 2, 3]
    assert {n: tree_hashes(sweep_dir / str(n), mtimes=True) for n in (0, 1)} == before  # resume never rewrites a job
    assert trials[0].params == pytest.approx(PATH_A)  # the guide's configuration is always measured
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4  # resume did not replay draws

    rows = read_trials_csv(sweep_dir)
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    for t, row in zip(trials, rows):
        record = json.loads((sweep_dir / str(t.number) / "metrics.json").read_text())
        assert record["value"] == pytest.approx(t.value)
        assert row["state"] == "COMPLETE" and float(row["objective"]) == pytest.approx(t.value)
        assert float(row["lr.lr0"]) == pytest.approx(t.params["lr.lr0"])
        assert int(row["epochs_completed"]) == 2 and row["stop_reason"] == "completed"
        assert Path(row["run_dir"]) == sweep_dir / str(t.number)
        # the job reported every epoch to its trial
        assert sorted(t.intermediate_values) == [1, 2]
    best = yaml.safe_load((sweep_dir / "best.yaml").read_text())
    study_best = max(trials, key=lambda t: t.value)
    assert best["value"] == pytest.approx(study_best.value) and best["objective"] == "mAP50"
    assert best["params"] == pytest.approx(study_best.params)


@pytest.mark.slow
def test_compare_reads_a_real_sweep_folder_and_its_study(resumed_sweep, tmp_path):
    sweep_dir, _ = resumed_sweep
    out = tmp_path / "table.csv"
    proc = run_cli("compare", str(sweep_dir), "--csv", str(out), "--plot", str(tmp_path / "plots"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    study = {t.number: t.value for t in load_study(sweep_dir).trials}
    assert sorted(int(Path(r["run"]).name) for r in rows) == [0, 1, 2, 3]
    for row in rows:
        assert float(row["objective"]) == pytest.approx(study[int(Path(row["run"]).name)])
    assert {"lr.lr0", "augmentation.mosaic"} <= set(rows[0])  # the swept parameters are the differing columns
    for png in ("history_path_a.png", "importance_path_a.png", "objective_curves.png"):
        assert (tmp_path / "plots" / png).stat().st_size > 0


@pytest.mark.slow
def test_pruned_trials_stop_early_and_keep_results_and_weights(tiny_overrides, tmp_path):
    sweep_dir = tmp_path / "sweep"
    # mAP50 never exceeds 1, so a lower threshold of 2 prunes every trial at its first judged epoch.
    proc = run_train(*sweep_args(tiny_overrides, sweep_dir, "epochs=3", "hydra.sweeper.n_trials=2",
                                 "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=2.0"))
    assert proc.returncode == 0, proc.stderr[-3000:]

    trials = load_study(sweep_dir).trials
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED]
    for t in trials:
        run_dir = sweep_dir / str(t.number)
        record = json.loads((run_dir / "metrics.json").read_text())
        assert record["stop_reason"] == "pruned" and record["epochs_completed"] == 1 < 3
        assert (run_dir / "results.csv").is_file()
        assert (run_dir / "weights" / "best.pt").is_file() and (run_dir / "weights" / "last.pt").is_file()
        assert t.value == pytest.approx(t.intermediate_values[1])  # PRUNED keeps the last reported value
    assert [r["state"] for r in read_trials_csv(sweep_dir)] == ["PRUNED", "PRUNED"]
    assert not (sweep_dir / "best.yaml").exists()  # no trial completed: nothing to call best


@pytest.mark.slow
def test_single_run_stops_at_unmet_gate(tiny_overrides, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(*tiny_overrides, "epochs=3", "monitor.gates=[[1,0.99]]", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["stop_reason"] == "gate"
    assert record["epochs_completed"] == 1
    assert (run_dir / "weights" / "best.pt").is_file()


def test_a_refused_job_is_a_fail_trial_with_the_reason(tiny_overrides, tmp_path):
    """A real job refused before training (the sweeper's bookkeeping of failures is in test_sweeper.py)."""
    sweep_dir = tmp_path / "sweep"
    broken = [*tiny_overrides, "optimizer.optimizer=NoSuchOptimizer"]
    proc = run_train(*sweep_args(broken, sweep_dir, "hydra.sweeper.n_trials=1", "hydra.sweeper.max_failure_rate=1.0"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    [trial] = load_study(sweep_dir).trials
    assert trial.state == TrialState.FAIL and "NoSuchOptimizer" in trial.user_attrs["fail_reason"]
    assert "NoSuchOptimizer" in read_trials_csv(sweep_dir)[0]["fail_reason"]


@pytest.mark.slow
def test_a_diverging_trial_is_fail_nan_and_never_best(tiny_overrides, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_train(*sweep_args(tiny_overrides, sweep_dir, "+ultralytics.box=1e38", "hydra.sweeper.n_trials=1",
                                 "hydra.sweeper.max_failure_rate=1.0"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    [trial] = load_study(sweep_dir).trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "nan" and trial.value is None
    assert json.loads((sweep_dir / "0" / "metrics.json").read_text())["stop_reason"] == "nan"
    assert [(r["state"], r["fail_reason"]) for r in read_trials_csv(sweep_dir)] == [("FAIL", "nan")]
    assert not (sweep_dir / "best.yaml").exists()


@pytest.mark.slow
def test_a_job_refuses_a_crafted_pruner_attribute_before_training(tiny_overrides, tmp_path):
    """Whoever can write to a shared study writes the pruner spec its jobs build; a real job given a trial
    whose spec names another class stops with one line, and the class never runs."""
    marker = tmp_path / "created-by-the-spec"
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    study = optuna.create_study(study_name="shared", storage=storage)
    study.ask().set_system_attr(PRUNER_ATTR, {"_target_": "os.makedirs", "name": str(marker)})
    run_dir = tmp_path / "run"
    proc = run_train(*tiny_overrides, f"hydra.run.dir={run_dir}", "trial.number=0", "trial.study_name=shared",
                     f"trial.storage='{storage}'")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xray_exp: error:")]
    assert len(errors) == 1 and "refusing pruner spec naming _target_ 'os.makedirs'" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not marker.exists()
    assert not (run_dir / "weights").exists() and not (run_dir / "results.csv").exists()  # nothing trained


@pytest.mark.slow
def test_plain_grid_multirun_writes_one_run_folder_per_combination(tiny_overrides, tmp_path):
    """The issue's 3x3 grid (lr.lr0=0.001,0.002,0.005 x mosaic=0.5,0.8,1.0), shrunk to 2x2 at 1 epoch for time."""
    sweep_dir = tmp_path / "grid"
    proc = run_train("-m", *tiny_overrides, "epochs=1", "lr.lr0=0.001,0.005", "augmentation.mosaic=0.5,1.0",
                     f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert job_folders(sweep_dir) == [0, 1, 2, 3]
    combos = set()
    for n in range(4):
        record = json.loads((sweep_dir / str(n) / "metrics.json").read_text())
        assert record["stop_reason"] == "completed"
        cfg = yaml.safe_load((sweep_dir / str(n) / ".hydra" / "config.yaml").read_text())
        combos.add((cfg["lr"]["lr0"], cfg["augmentation"]["mosaic"]))
    assert combos == {(0.001, 0.5), (0.001, 1.0), (0.005, 0.5), (0.005, 1.0)}
    assert not (sweep_dir / "study.db").exists()  # the basic sweeper: no study


@pytest.mark.slow
def test_sweep_cli_workers_share_one_study(tiny_overrides, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("sweep", "--workers", "2", "search=path_a", *tiny_overrides, "epochs=1",
                   f"hydra.sweep.dir={sweep_dir}", "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load_study(sweep_dir).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert [t.state for t in trials if t.state != TrialState.COMPLETE] in ([], [TrialState.FAIL])  # budget race
    assert job_folders(sweep_dir) == [t.number for t in trials if t.state == TrialState.COMPLETE]
    assert trials[0].params == pytest.approx(PATH_A)
    assert sum(t.params == pytest.approx(PATH_A) for t in trials) == 1  # enqueued once, not per worker
    owners = {t.system_attrs["xray_exp:owner"]["pid"] for t in trials if t.state == TrialState.COMPLETE}
    assert len(owners) == 2  # both workers ran trials
    assert (sweep_dir / "worker-0.log").is_file() and (sweep_dir / "worker-1.log").is_file()


def test_sweep_cli_without_search_preset_is_one_line_error():
    proc = run_cli("sweep", "--workers", "2", "epochs=1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "xray-exp: error: xray-exp sweep needs the xray_optuna sweeper: add a search preset (e.g. search=path_a)"]
