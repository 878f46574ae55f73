"""The sweep contract: what a sweep folder holds and what the sweeper and its jobs tell each other
through the Optuna study. Defined here once; the sweeper (hydra_plugins/xray_exp_sweeper), the job
(run/trial_hook.py) and `xray-exp sweep` import it.

Optuna 2.10 has no public way to open an existing trial by number, to set attributes on a trial
another process owns, to fix a trial's parameters once it was asked, to test whether a value lies in a
distribution, or to record a heartbeat and find stale trials from outside study.optimize; the private calls
that do these live in this module and nowhere else.
"""
import os
from typing import Any

from xray_exp.errors import XrayExpError

STORAGE_FILE = "study.db"  # default storage: SQLite in the sweep folder
TRIALS_FILE = "trials.csv"  # one row per trial, rewritten after every trial
BEST_FILE = "best.yaml"     # the best COMPLETE trial: number, value, params, run folder
# hydra-optuna-sweeper's own result file (name, best_params, best_value), written as it does, beside best.yaml.
OPTIMIZATION_RESULTS_FILE = "optimization_results.yaml"
# Optuna keeps no pruner in its storage: the job rebuilds the sweeper's pruner from this system attr.
PRUNER_ATTR = "xray_exp:pruner"
# Which sweep process runs the trial, so a later start can tell a dead owner from a live worker.
OWNER_ATTR = "xray_exp:owner"
# Seconds between heartbeats, on trials of a database-server study: the job records them too, so a trial
# whose host died is failed by any worker once its heartbeat is older than the grace period.
HEARTBEAT_ATTR = "xray_exp:heartbeat_s"


def default_storage(sweep_dir) -> str:
    """The storage URL of a sweep folder that names none: SQLite beside the job folders."""
    return f"sqlite:///{sweep_dir / STORAGE_FILE}"


def is_sqlite(storage: str) -> bool:
    """A file database: one host only (SQLite on a network file system corrupts)."""
    return storage.startswith("sqlite:")


def open_storage(url: str) -> Any:
    """The Optuna storage behind a URL, built once per process: an RDB storage (engine, schema check) takes
    tens of milliseconds to build, and a sweep's jobs run in the sweeper's process. Study handles loaded on
    it still start with empty caches. Redis URLs are left to Optuna."""
    import optuna

    if url.startswith("redis"):
        return url
    key = (os.getpid(), url)  # a forked process opens its own connections
    if key not in _STORAGES:
        _STORAGES[key] = optuna.storages.RDBStorage(url)
    return _STORAGES[key]


_STORAGES: dict[tuple[int, str], Any] = {}


def trial_id(study: Any, number: int) -> int:
    """Storage id of trial `number` of `study` (KeyError when the study has no such trial)."""
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(number))


def trial_system_attrs(study: Any, number: int) -> dict[str, Any]:
    return study._storage.get_trial(trial_id(study, number)).system_attrs


def set_trial_user_attrs(study: Any, number: int, attrs: dict[str, Any]) -> None:
    """User attributes on a trial, whichever process or handle created it."""
    tid = trial_id(study, number)
    for key, value in attrs.items():
        study._storage.set_trial_user_attr(tid, key, value)


def fix_trial_params(trial: Any, values: dict[str, Any]) -> None:
    """Make a trial that was just asked take `values` instead of sampling them: the system attribute that
    `Study.enqueue_trial` writes, and that `Trial._suggest` reads before it asks the sampler."""
    trial.set_system_attr("fixed_params", values)


def distribution_contains(distribution: Any, value: Any) -> bool:
    """Whether an Optuna distribution can yield `value` (a categorical one raises on a value not among its choices)."""
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def record_heartbeat(study: Any, number: int) -> None:
    """Optuna's heartbeat row of trial `number` set to now (the storage's clock)."""
    study._storage.record_heartbeat(trial_id(study, number))


def trial_finished(study: Any, number: int) -> bool:
    """Whether trial `number` is finished, read from the database (a handle's cache may be older)."""
    storage = getattr(study._storage, "_backend", study._storage)
    return storage.get_trial(trial_id(study, number)).state.is_finished()


def stale_trial_numbers(study: Any) -> list[int]:
    """RUNNING trials whose last heartbeat is older than the storage's grace period: the rule of Optuna's
    fail_stale_trials, without failing them, so the caller can record why before it does."""
    storage = getattr(study._storage, "_backend", study._storage)
    return sorted(storage.get_trial(tid).number for tid in storage._get_stale_trial_ids(study._study_id))


# hydra-submitit-launcher's SLURM launcher: each trial is a SLURM job on a node SLURM picks.
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def check_storage(storage: str, launcher: str, multi_host: bool = False) -> None:
    """Trials on several hosts (the SLURM launcher, or --multi-host) need a database server: SQLite on a
    network file system corrupts. Checked by `xray-exp sweep` and by the sweeper itself (`python -m xray_exp -m`)."""
    if not is_sqlite(storage):
        return
    if launcher == SLURM_LAUNCHER:
        raise XrayExpError(f"SLURM trials run on other nodes and cannot share SQLite ({storage}): "
                           "set hydra.sweeper.storage=postgresql://... (a server every node reaches)")
    if multi_host:
        raise XrayExpError(f"--multi-host needs a database server, not SQLite ({storage}), which corrupts on "
                           "a network file system: set hydra.sweeper.storage=postgresql://...")
