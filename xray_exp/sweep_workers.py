"""Sweep workers: the `python -m xray_exp -m` processes that share one Optuna study, the GPU each one
trains on, and the line the console shows for every trial they finish.

`xray-exp sweep` (xray_exp/cli/sweep.py) is the command; this module is what it does:
- `plan_workers` turns --gpus / --per-gpu / --workers and the visible CUDA devices into one
  `WorkerSpec` per worker. It is pure (the device count is an argument), so GPU plans are testable
  on a machine without one.
- `compose_sweep` reads what the workers must share (study, sweep folder, storage, seed, launcher)
  from the composed config (xray_exp.study.check_storage refuses SQLite when trials run on several hosts).
- `run_workers` starts the workers, waits for them and logs one line per finished trial.

Workers never coordinate with each other: each is an xray_optuna sweep process with n_jobs=1 that
asks the shared study for its next trial, so the same command on another machine with the same
storage URL adds workers to the same search.
"""
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xray_exp.errors import XrayExpError
from xray_exp.study import OWNER_ATTR, SLURM_LAUNCHER, TRIALS_FILE, default_storage

log = logging.getLogger(__name__)

SEED_STRIDE = 10007  # worker k samples with seed + k * stride: workers do not repeat each other's draws
CPU_WORKERS = 2      # --workers default on a machine without CUDA
POLL_S = 2.0         # how often the parent reads the study for finished trials


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process: what it adds to the parent's environment and to the user's overrides."""

    index: int
    gpu: str | None = None  # the CUDA device it sees as device 0; None: training picks its device as configured
    env: dict[str, str] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()


def plan_workers(gpus: str | None, per_gpu: int | None, workers: int | None, cuda_count: int,
                 visible: str | None = None, gpus_from_launcher: bool = False) -> list[WorkerSpec]:
    """The workers for --gpus LIST|all, --per-gpu K and --workers N on a machine with `cuda_count`
    visible CUDA devices.

    --workers N: N processes that train where the config says (today's CPU behaviour). --gpus: K
    workers per listed GPU (index into the visible devices; `visible` is the parent's
    CUDA_VISIBLE_DEVICES, so index 1 of "4,5" is physical device 5), each started with
    CUDA_VISIBLE_DEVICES=<its GPU> and device=0. With neither, every visible GPU gets one worker, or
    CPU_WORKERS workers without CUDA. `gpus_from_launcher`: the launcher (SLURM) gives each trial its
    own GPU on another node, so the workers here are plain processes and --gpus does not apply.
    """
    if workers is not None and workers < 1:
        raise XrayExpError(f"--workers must be at least 1, got {workers}")
    if per_gpu is not None and per_gpu < 1:
        raise XrayExpError(f"--per-gpu must be at least 1, got {per_gpu}")
    if workers is not None and (gpus is not None or per_gpu is not None):
        raise XrayExpError("--workers counts unpinned processes; with --gpus/--per-gpu the count is "
                           "GPUs x per-GPU: give one or the other")
    if gpus_from_launcher and (gpus is not None or per_gpu is not None):
        raise XrayExpError("--gpus/--per-gpu: the SLURM launcher gives every trial its own GPU; "
                           "use --workers N for N trials (SLURM jobs) at a time")
    if workers is not None or gpus_from_launcher or (cuda_count == 0 and gpus is None and per_gpu is None):
        return [WorkerSpec(k) for k in range(workers or CPU_WORKERS)]
    if cuda_count == 0:
        flag = "--gpus" if gpus is not None else "--per-gpu"
        raise XrayExpError(f"{flag}: no CUDA device is visible on this machine; use --workers N for CPU workers")

    indices = _gpu_indices(gpus or "all", cuda_count)
    physical = [d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(cuda_count)]
    k_per_gpu = per_gpu or 1
    # Round-robin: workers 0..n-1 take one GPU each before any GPU gets a second worker.
    return [WorkerSpec(k, gpu=physical[i], env={"CUDA_VISIBLE_DEVICES": physical[i]}, overrides=("device=0",))
            for k, i in enumerate(indices * k_per_gpu)]


def _gpu_indices(gpus: str, cuda_count: int) -> list[int]:
    if gpus.strip() == "all":
        return list(range(cuda_count))
    try:
        indices = [int(g) for g in gpus.split(",")]
    except ValueError:
        raise XrayExpError(f"--gpus {gpus}: expected 'all' or GPU indices like 0,1,2") from None
    bad = [i for i in indices if not 0 <= i < cuda_count]
    if bad:
        raise XrayExpError(f"--gpus {gpus}: no GPU {bad[0]} here ({cuda_count} visible: 0..{cuda_count - 1})")
    if len(set(indices)) != len(indices):
        raise XrayExpError(f"--gpus {gpus}: a GPU is listed twice; use --per-gpu K for several workers per GPU")
    return indices


def cuda_device_count() -> int:
    """CUDA devices this process can see (honours CUDA_VISIBLE_DEVICES); 0 without CUDA."""
    import torch

    return torch.cuda.device_count()


@dataclass(frozen=True)
class Sweep:
    """What every worker of one search must share."""

    study_name: str
    dir: Path
    storage: str
    seed: int | None
    launcher: str  # the Hydra launcher's _target_

    @property
    def slurm(self) -> bool:
        return self.launcher == SLURM_LAUNCHER


def compose_sweep(overrides: list[str]) -> Sweep:
    """Compose the config the workers will run and read the study, folder, storage, seed and launcher."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from hydra_plugins.xray_exp_sweeper.config import XrayOptunaSweeperConf
    from xray_exp import CONF_DIR

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
    except HydraException as e:  # e.g. a group option that does not exist: one line instead of a traceback
        lines = [line.strip() for line in str(e).split("Config search path:")[0].splitlines() if line.strip()]
        options = lines[2:] if len(lines) > 2 and lines[1].startswith("Available options") else []
        raise XrayExpError(lines[0] + (f" (options: {', '.join(options)})" if options else "")) from None
    sweeper = cfg.hydra.sweeper
    if sweeper.get("_target_") != XrayOptunaSweeperConf._target_:
        raise XrayExpError("xray-exp sweep needs the xray_optuna sweeper: add a search preset (e.g. search=path_a)")
    if not sweeper.study_name:
        raise XrayExpError("xray-exp sweep needs hydra.sweeper.study_name: workers share the study by name")
    sweep_dir = Path(cfg.hydra.sweep.dir).resolve()
    return Sweep(study_name=sweeper.study_name, dir=sweep_dir, storage=sweeper.storage or default_storage(sweep_dir),
                 seed=sweeper.sampler.get("seed"), launcher=cfg.hydra.launcher.get("_target_", ""))


def worker_command(sweep: Sweep, overrides: list[str], spec: WorkerSpec) -> list[str]:
    """`python -m xray_exp -m ...` for one worker: the user's overrides, the shared study, its own seed."""
    if spec.gpu is not None and any(o.split("=", 1)[0].lstrip("+~") == "device" for o in overrides):
        raise XrayExpError("device=...: GPU workers train on device 0 of their own CUDA_VISIBLE_DEVICES; "
                           "pick GPUs with --gpus, or use --workers N for a device of your choice")
    cmd = [sys.executable, "-m", "xray_exp", "-m", *overrides, *spec.overrides, f"hydra.sweep.dir={sweep.dir}",
           f"hydra.sweeper.storage='{sweep.storage}'", "hydra.sweeper.n_jobs=1"]
    if sweep.seed is not None:
        cmd.append(f"hydra.sweeper.sampler.seed={int(sweep.seed) + spec.index * SEED_STRIDE}")
    return cmd


def start_worker(cmd: list[str], spec: WorkerSpec, log_path: Path) -> subprocess.Popen:
    """Start one worker with its environment, stdout and stderr into log_path."""
    out = log_path.open("w")
    gpu = f" on GPU {spec.gpu}" if spec.gpu is not None else ""
    log.info(f"worker {spec.index}{gpu}: {' '.join(cmd[1:])} > {log_path}")
    try:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **spec.env})
    finally:
        out.close()  # the child holds its own descriptor


def run_workers(sweep: Sweep, overrides: list[str], specs: list[WorkerSpec]) -> list[int]:
    """Start the workers (worker 0 first, the others once the study has its first trial), log a line per
    finished trial until all have ended; returns their exit codes."""
    import optuna

    sweep.dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        for spec in specs:
            if spec.index == 1 and not _wait_for_study(sweep, procs[0]):
                break  # worker 0 ended before the study existed: the others would fail the same way
            procs.append(start_worker(worker_command(sweep, overrides, spec), spec,
                                      sweep.dir / f"worker-{spec.index}.log"))
        progress = Progress({p.pid: spec.index for p, spec in zip(procs, specs)})
        study = None
        while True:
            running = any(p.poll() is None for p in procs)
            try:
                study = study or optuna.load_study(study_name=sweep.study_name, storage=sweep.storage)
                for line in progress.lines(study):
                    log.info(line)
            except Exception as e:  # no study yet, or the database is busy: the next round reads again
                log.debug(f"progress: {e}")
            if not running:
                break
            time.sleep(POLL_S)
    finally:
        for p in procs:  # Ctrl-C reaches the workers too; wait so none is left behind
            p.wait()
    codes = [p.returncode for p in procs]
    log.info(f"study {sweep.study_name}: {sweep.dir / TRIALS_FILE} (worker exit codes {codes})")
    return codes


def _wait_for_study(sweep: Sweep, first: subprocess.Popen) -> bool:
    """Start the other workers once worker 0 created the study and its first trial, so they neither race
    to create the schema nor enqueue the start configuration twice."""
    import optuna

    while first.poll() is None:
        try:
            if optuna.load_study(study_name=sweep.study_name, storage=sweep.storage).get_trials(deepcopy=False):
                return True
        except Exception:  # no study or no tables yet (KeyError, OperationalError): keep waiting
            pass
        time.sleep(0.5)
    return first.returncode == 0


class Progress:
    """Console lines for trials that finished since the last call: worker, trial, state, objective,
    epochs, wall time, and the study's best so far. Trials finished before the first call (a resumed
    study) are not repeated."""

    def __init__(self, worker_of_pid: dict[int, int]):
        self.worker_of_pid = worker_of_pid
        self.seen: set[int] | None = None

    def lines(self, study: Any) -> list[str]:
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        if self.seen is None:
            self.seen = {t.number for t in finished}
            return []
        new = [t for t in finished if t.number not in self.seen]
        if not new:
            return []
        self.seen |= {t.number for t in new}
        best = study.best_trial if any(t.state == TrialState.COMPLETE for t in trials) else None
        tail = f"best so far: trial {best.number} {best.value:.4f}" if best else "best so far: none"
        return [f"{self._describe(t)}  | {tail}" for t in new]

    def _describe(self, t: Any) -> str:
        owner = t.system_attrs.get(OWNER_ATTR)
        worker = self.worker_of_pid.get(owner["pid"]) if owner else None
        who = f"worker {worker}" if worker is not None else (f"{owner['host']}:{owner['pid']}" if owner else "worker ?")
        epochs, wall = t.user_attrs.get("epochs_completed"), t.user_attrs.get("wall_s")
        line = (f"{who}  trial {t.number}  {t.state.name}  objective {'-' if t.value is None else f'{t.value:.4f}'}"
                f"  epochs {'-' if epochs is None else epochs}  wall {'-' if wall is None else f'{wall:.0f} s'}")
        reason = t.user_attrs.get("fail_reason")
        return f"{line}  ({reason})" if reason else line
