"""The xray_optuna sweeper's bookkeeping on a stub task (tests/stub_app), in the style of hydra-optuna-sweeper's
own tests (its example/sphere.py): resume and job-folder numbering, trial 0, config-group and choice() search
spaces, PRUNED/FAIL/NaN, orphaned trials, failure rate, SIGINT/SIGTERM/kill -9, the tables, a crafted
pruner attribute, and sweeps started together.

The stub's job takes milliseconds, so each test costs what Hydra and Optuna themselves cost. Sweeps run
in this process (stub_app.run_stub); where separate processes are the point, they are forked from this
one (no interpreter start-up and imports, seconds each). Real trainings through the same sweeper are in
test_sweep.py.
"""
import csv
import datetime
import json
import multiprocessing
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

import optuna
import pytest
import yaml
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from helpers import tree_hashes
from hydra_plugins.xray_exp_sweeper import _impl
from stub_app import APP, memory_dir, run_stub
from xray_exp.errors import Terminated, XrayExpError
from xray_exp.run.run_folder import read_metrics
from xray_exp.study import (BEST_FILE, OPTIMIZATION_RESULTS_FILE, OWNER_ATTR, PRUNER_ATTR, TRIALS_FILE,
                            default_storage)

optuna.logging.set_verbosity(optuna.logging.WARNING)
CONFIG_VALUES = {"x": 0.8, "y": 0.5}  # tests/stub_app/conf/config.yaml
GAIN = {"adam": 0.0, "sgd": 1.0}      # tests/stub_app/conf/opt/*.yaml


@pytest.fixture
def sweep_dir(tmp_path) -> Iterator[Path]:
    """A sweep folder for one test (not created yet), in memory."""
    with memory_dir(tmp_path) as folder:
        yield folder / "sweep"


def stub_objective(x: float, y: float, opt: str = "adam") -> float:
    return 1.0 - (x - 0.3) ** 2 - (y - 0.6) ** 2 + GAIN[opt]


def load(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="stub", storage=default_storage(sweep_dir))


def job_folders(sweep_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


def read_trials_csv(sweep_dir: Path) -> list[dict]:
    with (sweep_dir / TRIALS_FILE).open() as f:
        return list(csv.DictReader(f))


def metrics(sweep_dir: Path, number: int) -> dict:
    return read_metrics(sweep_dir / str(number))


def test_stub_app_declares_no_trial_node():
    """The sweeper must work with apps that have no `trial:` node: it adds one (`++trial.number=...`)."""
    assert "trial" not in OmegaConf.load(APP.parent / "conf" / "config.yaml")


def test_rerun_resumes_to_n_trials_total_numbering_jobs_by_trial(sweep_dir):
    assert run_stub(f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=2") == 0
    assert job_folders(sweep_dir) == [0, 1]
    before = {n: tree_hashes(sweep_dir / str(n), mtimes=True) for n in (0, 1)}
    assert run_stub(f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=3") == 0

    trials = load(sweep_dir).trials
    assert [(t.number, t.state) for t in trials] == [(n, TrialState.COMPLETE) for n in range(3)]
    assert job_folders(sweep_dir) == [0, 1, 2]  # job folder N is trial N across runs
    assert {n: tree_hashes(sweep_dir / str(n), mtimes=True) for n in (0, 1)} == before  # never rewritten
    assert trials[0].params == CONFIG_VALUES  # trial 0 is the config's own values
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 3  # the resume did not replay draws
    for t in trials:
        job_cfg = OmegaConf.load(sweep_dir / str(t.number) / ".hydra" / "config.yaml")
        assert job_cfg.trial.number == t.number and job_cfg.trial.study_name == "stub"  # added with ++
        assert t.value == pytest.approx(stub_objective(**t.params))  # the job got the trial's parameters
        assert sorted(t.intermediate_values) == [1, 2, 3]  # the job reported every epoch to its trial
        assert t.system_attrs[OWNER_ATTR]["pid"] == os.getpid()
        assert t.system_attrs[PRUNER_ATTR] == {"_target_": "optuna.pruners.NopPruner"}

    rows = read_trials_csv(sweep_dir)
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    for t, row in zip(trials, rows):
        assert row["state"] == "COMPLETE" and float(row["objective"]) == pytest.approx(t.value)
        assert float(row["objective"]) == pytest.approx(metrics(sweep_dir, t.number)["value"])
        assert float(row["x"]) == pytest.approx(t.params["x"]) and float(row["y"]) == pytest.approx(t.params["y"])
        assert int(row["epochs_completed"]) == 3 and row["stop_reason"] == "completed" and row["fail_reason"] == ""
        assert Path(row["run_dir"]) == sweep_dir / str(t.number)
    best_trial = max(trials, key=lambda t: t.value)
    best = yaml.safe_load((sweep_dir / BEST_FILE).read_text())
    assert best["trial"] == best_trial.number and best["value"] == pytest.approx(best_trial.value)
    assert best["params"] == best_trial.params and best["run_dir"] == str(sweep_dir / str(best_trial.number))
    # hydra-optuna-sweeper's file, read as its own test reads it
    stock = OmegaConf.load(sweep_dir / OPTIMIZATION_RESULTS_FILE)
    assert set(stock) == {"name", "best_params", "best_value"} and stock.name == "optuna"
    assert stock.best_params == best_trial.params and stock.best_value == best_trial.value


def test_job_outcomes_map_to_pruned_and_nan_is_fail_never_best(sweep_dir):
    code = run_stub(f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=3", "hydra.sweeper.max_failure_rate=1.0",
                    "prune_at=[1]", "nan_at=[2]", "nan_raise_at=[3]")
    assert code == 0
    trials = load(sweep_dir).trials
    # FAIL does not count toward n_trials: a fifth trial makes three
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL,
                                         TrialState.COMPLETE]
    # PRUNED: stopped early, keeps the last reported epoch's value
    assert metrics(sweep_dir, 1)["stop_reason"] == "pruned" and metrics(sweep_dir, 1)["epochs_completed"] == 1
    assert trials[1].value == pytest.approx(trials[1].intermediate_values[1])
    # NaN is a failure whether the job returned NaN (2) or raised after writing stop_reason=nan (3)
    assert [trials[n].user_attrs["fail_reason"] for n in (2, 3)] == ["nan", "nan"]
    assert trials[2].value is None and trials[3].value is None

    rows = read_trials_csv(sweep_dir)
    assert [r["state"] for r in rows] == [t.state.name for t in trials]
    assert [r["fail_reason"] for r in rows] == ["", "", "nan", "nan", ""]
    assert [r["stop_reason"] for r in rows] == ["completed", "pruned", "nan", "nan", "completed"]
    assert [r["objective"] for r in rows][2:4] == ["", ""]
    best = yaml.safe_load((sweep_dir / BEST_FILE).read_text())
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert best["trial"] == max(complete, key=lambda t: t.value).number  # only COMPLETE trials can be best
    assert yaml.safe_load((sweep_dir / OPTIMIZATION_RESULTS_FILE).read_text())["best_value"] == best["value"]


def test_config_group_sweep_starts_from_the_configs_option(sweep_dir):
    assert run_stub(f"hydra.sweep.dir={sweep_dir}", "opt=choice(adam,sgd)", "hydra.sweeper.n_trials=2") == 0
    trials = load(sweep_dir).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[0].params == {**CONFIG_VALUES, "opt": "adam"}  # the option's name, not its node
    for t in trials:
        job_cfg = OmegaConf.load(sweep_dir / str(t.number) / ".hydra" / "config.yaml")
        assert job_cfg.opt.name == t.params["opt"]  # the job composed the group option it was given
        assert t.value == pytest.approx(stub_objective(**t.params))
    assert [r["opt"] for r in read_trials_csv(sweep_dir)] == [t.params["opt"] for t in trials]


def test_choice_without_the_config_value_samples_trial_0_with_one_warning(sweep_dir, capsys):
    assert run_stub(f"hydra.sweep.dir={sweep_dir}", "x=choice(0.5,1.0)", "hydra.sweeper.n_trials=1") == 0
    [first] = load(sweep_dir).trials
    assert first.state == TrialState.COMPLETE  # not left RUNNING
    assert first.params["x"] in (0.5, 1.0) and first.params["y"] == CONFIG_VALUES["y"]  # y is still the config's
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "trial 0 is not the config's own values" in line]
    assert len(warnings) == 1 and "x=0.8" in warnings[0] and "y=" not in warnings[0]


def add_running_trial(study: optuna.Study, started: datetime.datetime, owner: dict | None) -> None:
    study.add_trial(FrozenTrial(number=0, trial_id=0, state=TrialState.RUNNING, value=None, datetime_start=started,
                                datetime_complete=None, params={}, distributions={}, user_attrs={},
                                system_attrs={} if owner is None else {OWNER_ATTR: owner}, intermediate_values={}))


def test_running_trials_of_gone_sweep_processes_are_reaped(sweep_dir):
    sweep_dir.mkdir()
    study = optuna.create_study(study_name="stub", storage=default_storage(sweep_dir), direction="maximize")
    now = datetime.datetime.now()
    long_ago = now - datetime.timedelta(seconds=_impl.OWNERLESS_GRACE_S + 60)
    here = socket.gethostname()
    add_running_trial(study, long_ago, None)  # 0: killed between ask and recording its owner, or the stock sweeper's
    add_running_trial(study, now, {"host": here, "pid": os.getpid(), "started": 0.0})  # 1: pid reused by another process
    add_running_trial(study, now, None)  # 2: just asked by a live sweep process, owner not recorded yet
    add_running_trial(study, long_ago, {"host": "elsewhere.invalid", "pid": 1, "started": 0.0})  # 3: cannot check

    assert run_stub(f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=3") == 0
    trials = load(sweep_dir).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING,
                                         TrialState.COMPLETE]  # 2 + 3 still count: one new trial makes 3
    assert trials[0].user_attrs["fail_reason"].startswith("interrupted: RUNNING for")
    assert trials[1].user_attrs["fail_reason"] == f"interrupted: sweep process {os.getpid()} ended during the trial"
    assert [r["state"] for r in read_trials_csv(sweep_dir)] == [t.state.name for t in trials]
    assert job_folders(sweep_dir) == [4]


def test_failure_rate_is_judged_after_five_trials_and_ends_with_one_line(sweep_dir, capsys):
    code = run_stub(f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=8", "hydra.sweeper.max_failure_rate=0.0",
                    f"fail_at=[{','.join(map(str, range(10)))}]")
    assert code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["xray_exp: error: 5 of 5 trials failed (max_failure_rate=0.0); "
                                "last: XrayExpError: stub failure in trial 4"]
    assert [t.state for t in load(sweep_dir).trials] == [TrialState.FAIL] * 5  # not stopped at the first failure
    assert [r["state"] for r in read_trials_csv(sweep_dir)] == ["FAIL"] * 5


def test_a_job_that_always_fails_stops_after_n_trials_failures(sweep_dir):
    assert run_stub(f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failure_rate=1.0",
                    "fail_at=[0,1,2,3]") == 0
    trials = load(sweep_dir).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert all(r["fail_reason"].startswith("XrayExpError: stub failure") for r in read_trials_csv(sweep_dir))
    assert not (sweep_dir / BEST_FILE).exists() and not (sweep_dir / OPTIMIZATION_RESULTS_FILE).exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_fails_the_running_trial_and_rewrites_the_tables(sweep_dir, start_sweep_process, signum):
    log = sweep_dir.parent / "sweep.log"
    proc = start_sweep_process(log, f"hydra.sweep.dir={sweep_dir}", "slow_at=[0]", "slow_s=60")
    wait_for_job(proc, sweep_dir, 0)
    os.kill(proc.pid, signum)
    proc.join(60)
    assert proc.exitcode == 128 + signum
    out = log.read_text()
    assert [line for line in out.splitlines() if line.startswith("xray_exp:")] == [
        f"xray_exp: sweep interrupted by {signal.Signals(signum).name} in trial 0: that trial is FAIL, the tables "
        "are rewritten; run the same command to resume"]
    assert "Traceback" not in out
    [trial] = load(sweep_dir).trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "interrupted"
    assert [(r["state"], r["fail_reason"]) for r in read_trials_csv(sweep_dir)] == [("FAIL", "interrupted")]


def test_a_sweep_killed_mid_trial_is_fail_on_rerun_and_the_budget_is_kept(sweep_dir, start_sweep_process):
    overrides = [f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=2"]
    proc = start_sweep_process(sweep_dir.parent / "sweep.log", *overrides, "slow_at=[1]", "slow_s=60")
    wait_for_job(proc, sweep_dir, 1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)
    kept = tree_hashes(sweep_dir / "0", mtimes=True)
    assert load(sweep_dir).trials[1].state == TrialState.RUNNING  # what kill -9 leaves behind

    assert run_stub(*overrides) == 0
    trials = load(sweep_dir).trials
    states = [t.state for t in trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]  # FAIL does not count
    assert trials[1].user_attrs["fail_reason"] == f"interrupted: sweep process {proc.pid} ended during the trial"
    assert tree_hashes(sweep_dir / "0", mtimes=True) == kept
    assert job_folders(sweep_dir) == [0, 1, 2]
    assert [r["state"] for r in read_trials_csv(sweep_dir)] == [s.name for s in states]


CRAFTED_PRUNERS = {  # what whoever can write to a shared study could store as a trial's pruner spec
    "other-class": {"_target_": "os.makedirs", "name": "{marker}"},
    "nested-target": {"_target_": "optuna.pruners.MedianPruner",
                      "n_startup_trials": {"_target_": "os.makedirs", "name": "{marker}"}},
    "positional-args": {"_target_": "optuna.pruners.MedianPruner", "_args_": ["{marker}"]},
}


@pytest.fixture(scope="module")
def crafted_study(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A real SQLite study whose trial k carries the k-th crafted pruner spec: (storage URL, marker folder
    each spec would create if it were run)."""
    with memory_dir(tmp_path_factory.mktemp("crafted")) as folder:
        storage, marker = default_storage(folder), folder / "created-by-the-spec"
        study = optuna.create_study(study_name="shared", storage=storage)
        for spec in CRAFTED_PRUNERS.values():
            study.ask().set_system_attr(PRUNER_ATTR, json.loads(json.dumps(spec).replace("{marker}", str(marker))))
        yield storage, marker


@pytest.mark.parametrize("number, name", list(enumerate(CRAFTED_PRUNERS)))
def test_a_crafted_pruner_attribute_is_refused_and_runs_nothing(crafted_study, number, name):
    """Jobs build the pruner named in their trial's attribute: only allowed classes with plain keyword values
    are built (Hydra's instantiate, used before, made the folder)."""
    from xray_exp.run.trial_hook import prune_hook

    storage, marker = crafted_study
    with pytest.raises(XrayExpError) as refused:
        prune_hook(OmegaConf.create({"number": number, "study_name": "shared", "storage": storage}))
    message = str(refused.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"study 'shared' trial {number}: refusing pruner spec")
    assert ("'os.makedirs'" in message) == (name == "other-class")  # names the culprit class
    assert not marker.exists()


def raise_terminated(signum, frame) -> None:
    raise Terminated()  # what `python -m xray_exp` makes of SIGTERM


def sweep_process(log: Path, barrier, overrides: tuple) -> None:
    sys.stdout = sys.stderr = log.open("w")
    signal.signal(signal.SIGTERM, raise_terminated)
    if barrier is not None:
        barrier.wait()
    sys.exit(run_stub(*overrides))


@pytest.fixture
def start_sweep_process():
    """start(log, *overrides, barrier=None): a stub sweep in its own process, forked from this one, so it starts
    with Hydra and Optuna imported (seconds saved); with a barrier it waits there first. Its output goes to
    `log`, its exit code is the sweep's. Processes still running when the test ends are killed."""
    procs = []

    def start(log: Path, *overrides: str, barrier=None) -> multiprocessing.Process:
        proc = multiprocessing.get_context("fork").Process(target=sweep_process, args=(log, barrier, overrides),
                                                           daemon=True)
        proc.start()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.join()


def wait_for_job(proc: multiprocessing.Process, sweep_dir: Path, number: int) -> None:
    """Until job `number` has started (Hydra wrote its .hydra folder)."""
    deadline = time.monotonic() + 60
    while not (sweep_dir / str(number) / ".hydra").is_dir():
        assert proc.is_alive() and time.monotonic() < deadline, f"the sweep ended before job {number} started"
        time.sleep(0.01)


def test_four_sweeps_started_together_on_a_new_study_share_it(sweep_dir, start_sweep_process):
    """Four processes race to create the study, its first trial and the last trials of the budget."""
    n_trials = 6  # two rounds of four processes: the second races for the last two trials
    overrides = [f"hydra.sweep.dir={sweep_dir}", f"hydra.sweeper.n_trials={n_trials}",
                 f"slow_at=[{','.join(map(str, range(n_trials)))}]", "slow_s=0.05"]
    barrier = multiprocessing.get_context("fork").Barrier(4)
    logs = [sweep_dir.parent / f"process-{k}.log" for k in range(4)]
    procs = [start_sweep_process(log, *overrides, barrier=barrier) for log in logs]
    for p in procs:
        p.join(120)
    outputs = [log.read_text() for log in logs]
    for p, out in zip(procs, outputs):
        assert p.exitcode == 0, out[-3000:]
        assert "Traceback" not in out and "IntegrityError" not in out
    trials = load(sweep_dir).trials
    assert [(t.number, t.state) for t in trials] == [(n, TrialState.COMPLETE) for n in range(n_trials)]
    assert trials[0].params == CONFIG_VALUES  # the start configuration, once
    assert sum(t.params == CONFIG_VALUES for t in trials) == 1
    assert job_folders(sweep_dir) == list(range(n_trials))
    assert [r["state"] for r in read_trials_csv(sweep_dir)] == ["COMPLETE"] * n_trials
    assert len({t.system_attrs[OWNER_ATTR]["pid"] for t in trials}) > 1  # the processes shared the work
