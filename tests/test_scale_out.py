"""Scale out: workers pinned to GPUs, trials through submitit, a study shared in a real PostgreSQL server,
heartbeats that fail a killed job's trial, and datasets that still work after their folder moved.

GPU plans are checked on real worker processes whose command is a stub that records its environment
(there is no GPU here); sweeps are real `xray-exp sweep` / `python -m xray_exp -m` runs on tiny data.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from helpers import CONF, FIXTURES, ROOT, TINY_DATA, run_cli, run_train, tiny_args
from xray_exp.data.synthetic import build_dataset
from xray_exp.data.yolo import load_data_yaml, write_data_yaml
from xray_exp.errors import XrayExpError
from xray_exp.study import OWNER_ATTR
from xray_exp.study import SLURM_LAUNCHER
from xray_exp.sweep_workers import WorkerSpec, plan_workers, start_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Records what a worker process was started with: its CUDA_VISIBLE_DEVICES and its arguments.
STUB_JOB = ("import json, os, sys; json.dump({'cuda': os.environ.get('CUDA_VISIBLE_DEVICES'), 'argv': sys.argv[2:]},"
            " open(sys.argv[1], 'w'))")


def sweep_overrides(tiny_overrides: list[str], sweep_dir: Path, n_trials: int, *extra: str) -> list[str]:
    return ["search=path_a", *tiny_overrides, "epochs=1", f"hydra.sweep.dir={sweep_dir}", "hydra/sweeper/pruner=none",
            f"hydra.sweeper.n_trials={n_trials}", *extra]


def job_folders(sweep_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


# ---------------------------------------------------------------- a throwaway PostgreSQL server
def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))  # Debian's layout (apt-get install postgresql)
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on loopback for this session: yields a function that makes a fresh empty database
    and returns its URL. Skipped, with the reason, where the server binaries or psycopg2 are missing."""
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 not installed: pip install 'xray_exp[postgres]'")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    # PostgreSQL refuses to run as root: as root, the server runs as the postgres user in a folder it owns.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="xray_exp_pg_"))
    if as_user:
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data / "db")]
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*ctl, "-w", "-l", str(data / "server.log"), "-o",
                        f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"],
                       check=True, capture_output=True, timeout=120)
        admin = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        admin.autocommit = True
        names = iter(range(1_000_000))

        def new_database() -> str:
            name = f"study_{next(names)}"
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name}")
            return f"postgresql://postgres@127.0.0.1:{port}/{name}"

        yield new_database
        admin.close()
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------- planning workers onto GPUs
def test_two_gpus_two_per_gpu_plan_four_workers_each_pinned_to_device_0_of_its_gpu():
    specs = plan_workers("0,1", 2, None, cuda_count=2)
    assert [(s.index, s.gpu) for s in specs] == [(0, "0"), (1, "1"), (2, "0"), (3, "1")]
    assert all(s.env == {"CUDA_VISIBLE_DEVICES": s.gpu} and s.overrides == ("device=0",) for s in specs)


def test_gpu_indices_follow_the_parents_visible_devices_and_all_means_every_one():
    specs = plan_workers("1", None, None, cuda_count=2, visible="4,5")
    assert [s.env for s in specs] == [{"CUDA_VISIBLE_DEVICES": "5"}]
    assert [s.gpu for s in plan_workers("all", None, None, cuda_count=3)] == ["0", "1", "2"]
    assert [s.gpu for s in plan_workers(None, 2, None, cuda_count=2)] == ["0", "1", "0", "1"]  # default: all


def test_without_cuda_workers_keep_todays_unpinned_processes():
    assert plan_workers(None, None, None, cuda_count=0) == [WorkerSpec(0), WorkerSpec(1)]
    assert plan_workers(None, None, 3, cuda_count=0) == [WorkerSpec(0), WorkerSpec(1), WorkerSpec(2)]
    # the SLURM launcher gives each trial its GPU: workers on the login node are plain processes
    assert plan_workers(None, None, 4, cuda_count=8, gpus_from_launcher=True) == [WorkerSpec(k) for k in range(4)]


@pytest.mark.parametrize("gpus, per_gpu, workers, cuda_count, slurm, message", [
    ("0,1", None, None, 0, False, "--gpus: no CUDA device is visible on this machine"),
    (None, 2, None, 0, False, "--per-gpu: no CUDA device is visible"),
    ("0,2", None, None, 2, False, "--gpus 0,2: no GPU 2 here (2 visible: 0..1)"),
    ("0,0", None, None, 2, False, "a GPU is listed twice; use --per-gpu K"),
    ("0,x", None, None, 2, False, "expected 'all' or GPU indices"),
    ("0", None, 2, 2, False, "give one or the other"),
    ("0", None, None, 2, True, "the SLURM launcher gives every trial its own GPU"),
    (None, 0, None, 2, False, "--per-gpu must be at least 1"),
])
def test_impossible_worker_plans_are_refused_with_the_flag_named(gpus, per_gpu, workers, cuda_count, slurm, message):
    with pytest.raises(XrayExpError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        plan_workers(gpus, per_gpu, workers, cuda_count, gpus_from_launcher=slurm)


def test_worker_processes_start_with_their_own_cuda_visible_devices_and_device_0(tmp_path):
    """The workers' real environment: each planned worker is started by the same function the CLI uses,
    with a stub job that writes down what it got."""
    specs = plan_workers("0,1", 2, None, cuda_count=2)
    procs = [start_worker([sys.executable, "-c", STUB_JOB, str(tmp_path / f"{s.index}.json"), *s.overrides], s,
                          tmp_path / f"worker-{s.index}.log") for s in specs]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    seen = [json.loads((tmp_path / f"{k}.json").read_text()) for k in range(4)]
    assert [s["cuda"] for s in seen] == ["0", "1", "0", "1"]  # two workers per GPU, each GPU its own
    assert all(s["argv"] == ["device=0"] for s in seen)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_sweep_cli_gpus_on_a_cpu_only_machine_is_one_line_error():
    proc = run_cli("sweep", "--gpus", "0,1", "search=path_a")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "xray-exp: error: --gpus: no CUDA device is visible on this machine; use --workers N for CPU workers"]


@pytest.mark.parametrize("args, message", [
    (["--workers", "2", "hydra/launcher=slurm_gpu"], "SLURM trials run on other nodes and cannot share SQLite"),
    (["--workers", "2", "--multi-host"], "--multi-host needs a database server, not SQLite"),
])
def test_sqlite_with_trials_on_several_hosts_is_refused_in_one_line(args, message, tmp_path):
    proc = run_cli("sweep", *args, "search=path_a", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"xray-exp: error: {message}") and "postgresql://" in line
    assert not (tmp_path / "sweep").exists()


def test_sweeper_without_the_cli_refuses_sqlite_for_slurm_trials_too(tmp_path):
    proc = run_train("-m", "search=path_a", "hydra/launcher=slurm_gpu", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("xray_exp: error: SLURM trials run on other nodes and cannot share SQLite")
    assert not (tmp_path / "sweep").exists()


def test_slurm_gpu_preset_asks_one_gpu_for_the_guides_4_hours_with_job_files_in_the_sweep_folder(tmp_path, monkeypatch):
    """What sbatch would be asked, through submitit's own translation of the launcher's parameters."""
    (tmp_path / "srun").write_text("#!/bin/sh\n")  # submitit's "am I on a SLURM cluster?" check looks for srun
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    import submitit
    from hydra import compose, initialize_config_dir
    from submitit.slurm.slurm import _make_sbatch_string

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("train", overrides=["search=path_a", "hydra/launcher=slurm_gpu", "hydra.sweep.dir=/scratch/a"],
                      return_hydra_config=True)
    params = dict(cfg.hydra.launcher)
    assert params["_target_"] == SLURM_LAUNCHER
    assert params["submitit_folder"] == "/scratch/a/.submitit/%j"
    executor = submitit.AutoExecutor(cluster="slurm", folder=params["submitit_folder"])
    executor.update_parameters(**{k: params[k] for k in ("timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb",
                                                         "nodes", "tasks_per_node")})
    sbatch = _make_sbatch_string(command="python -m x", folder=params["submitit_folder"],
                                 **executor._executor.parameters).splitlines()
    for line in ("#SBATCH --time=240", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=64GB", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1"):
        assert line in sbatch


# ---------------------------------------------------------------- datasets on shared disks
def test_written_data_yaml_has_no_absolute_path_and_resolves_from_its_own_folder(tmp_path):
    built = tmp_path / "built"
    for split in ("train", "val"):
        (built / "images" / split).mkdir(parents=True)
    write_data_yaml(built, ["knife", "gun"], ["train", "val"])
    assert "path" not in yaml.safe_load((built / "data.yaml").read_text())
    moved = shutil.move(str(built), str(tmp_path / "elsewhere"))
    ds = load_data_yaml(Path(moved) / "data.yaml")
    assert ds.root == (tmp_path / "elsewhere").resolve()
    assert ds.sources["train"] == [(tmp_path / "elsewhere" / "images" / "train").resolve()]


@pytest.mark.slow
def test_synthetic_dataset_copied_elsewhere_with_its_original_deleted_still_trains_and_audits(tmp_path):
    original = build_dataset(tmp_path / "built_here", **TINY_DATA)
    copy = Path(shutil.copytree(original.parent, tmp_path / "node_scratch" / "synthetic"))
    shutil.rmtree(original.parent)
    data_yaml = copy / "data.yaml"
    assert "path" not in yaml.safe_load(data_yaml.read_text())

    audit = run_cli("data", "audit", str(data_yaml), "--no-alignment")
    assert audit.returncode == 0, audit.stderr[-2000:]
    assert str(tmp_path / "built_here") not in audit.stdout + audit.stderr

    run_dir = tmp_path / "run"
    proc = run_train(*tiny_args(data_yaml), "epochs=1", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["stop_reason"] == "completed" and record["data"] == str(data_yaml.resolve())
    assert not (tmp_path / "built_here").exists()  # nothing was rebuilt at the old place


# ---------------------------------------------------------------- sweeps on several workers and hosts
@pytest.mark.slow
def test_four_trials_on_two_workers_through_submitit_local_all_reach_the_study(tiny_overrides, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("sweep", "--workers", "2",
                   *sweep_overrides(tiny_overrides, sweep_dir, 4, "hydra/launcher=submitit_local"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="path_a", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4
    assert [t.state for t in study.trials if t.state != TrialState.COMPLETE] in ([], [TrialState.FAIL])  # budget race
    for t in complete:  # each trial ran as a submitit job and its results reached the study
        record = json.loads((sweep_dir / str(t.number) / "metrics.json").read_text())
        assert t.value == pytest.approx(record["value"]) and t.user_attrs["epochs_completed"] == 1
        assert sorted(t.intermediate_values) == [1]  # the job reported its epoch from its own process
    assert len(list((sweep_dir / ".submitit").iterdir())) >= 4  # submitit's job folders, inside the sweep folder
    assert len({t.system_attrs[OWNER_ATTR]["pid"] for t in complete}) == 2
    # the console: one line per finished trial, with the best so far
    lines = [l for l in proc.stderr.splitlines() if "  trial " in l]
    assert len(lines) == len(study.trials)
    assert all(l.startswith(("worker 0  trial", "worker 1  trial")) and "| best so far: trial" in l for l in lines)


@pytest.mark.slow
def test_two_workers_on_one_postgresql_study_finish_exactly_n_trials_in_distinct_folders(
        postgres_server, tiny_overrides, tmp_path):
    storage = postgres_server()
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("sweep", "--workers", "2", "--multi-host",
                   *sweep_overrides(tiny_overrides, sweep_dir, 3, f"hydra.sweeper.storage='{storage}'"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="path_a", storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert [t.state for t in study.trials if t.state != TrialState.COMPLETE] in ([], [TrialState.FAIL])  # budget race
    assert job_folders(sweep_dir) == [t.number for t in complete]
    assert len({t.user_attrs["run_dir"] for t in complete}) == 3
    assert len({t.system_attrs[OWNER_ATTR]["pid"] for t in complete}) == 2  # both workers trained
    assert not (sweep_dir / "study.db").exists()


@pytest.mark.slow
def test_trials_run_as_slurm_jobs_of_the_slurm_gpu_preset_on_a_stand_in_scheduler(
        postgres_server, tiny_overrides, tmp_path):
    """hydra/launcher=slurm_gpu end to end: submitit's SLURM launcher writes and submits the batch script;
    only the scheduler is a stand-in (tests/fixtures/fake_slurm: sbatch runs the script here at once)."""
    storage = postgres_server()
    sweep_dir, state = tmp_path / "sweep", tmp_path / "slurm"
    env = {"PATH": f"{FIXTURES / 'fake_slurm'}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_DIR": str(state)}
    proc = run_cli("sweep", "--workers", "1", *sweep_overrides(tiny_overrides, sweep_dir, 1, "hydra/launcher=slurm_gpu",
                                                              f"hydra.sweeper.storage='{storage}'"), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="path_a", storage=storage)
    [trial] = study.trials
    assert trial.state == TrialState.COMPLETE and sorted(trial.intermediate_values) == [1]  # reported from the job
    record = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert trial.value == pytest.approx(record["value"])
    [script] = state.glob("job_*.sbatch")  # the trial was one SLURM job
    lines = script.read_text().splitlines()
    for flag in ("--time=240", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=64GB", "--ntasks-per-node=1"):
        assert f"#SBATCH {flag}" in lines
    job_id = script.stem.split("_")[1]
    assert (sweep_dir / ".submitit" / job_id / f"{job_id}_0_log.out").is_file()  # its logs in the sweep folder


@pytest.mark.slow
def test_job_killed_on_a_postgresql_study_is_fail_after_the_grace_period_and_the_total_comes_out_right(
        postgres_server, tiny_overrides, tmp_path):
    """Two hosts' worth of workers: two sweep processes with the same storage URL. Worker A is SIGKILLed
    during its trial; B, which cannot see A's process, fails the trial once its heartbeat is stale."""
    import psycopg2

    storage, grace = postgres_server(), 2
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "xray_exp", "-m",
           *sweep_overrides(tiny_overrides, sweep_dir, 3, "epochs=2", f"hydra.sweeper.storage='{storage}'",
                            "hydra.sweeper.heartbeat_interval=1", f"hydra.sweeper.grace_period={grace}")]
    a = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    b = None
    db = psycopg2.connect(storage)
    db.autocommit = True
    try:
        deadline = time.monotonic() + 300
        while True:  # A's trial 0 is under way: it has recorded a heartbeat
            assert a.poll() is None and time.monotonic() < deadline, "worker A ended before its first heartbeat"
            try:
                with db.cursor() as cur:
                    cur.execute("SELECT count(*) FROM trial_heartbeats")
                    if cur.fetchone()[0]:
                        break
            except psycopg2.errors.UndefinedTable:  # A has not created the study's tables yet
                pass
            time.sleep(0.2)
        b = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        os.killpg(a.pid, signal.SIGKILL)
        killed_at = datetime.now()
        a.wait()
        out, _ = b.communicate(timeout=600)
    finally:
        db.close()
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
    assert b.returncode == 0, out[-3000:]

    trials = optuna.load_study(study_name="path_a", storage=storage).trials
    assert trials[0].state == TrialState.FAIL
    assert "heartbeat" in trials[0].user_attrs["fail_reason"]
    assert trials[0].datetime_complete >= killed_at + timedelta(seconds=grace)  # not before the grace period
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3  # the killed trial did not count
    assert len({t.system_attrs[OWNER_ATTR]["pid"] for t in trials if t.state == TrialState.COMPLETE}) == 1
