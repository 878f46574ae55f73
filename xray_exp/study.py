"""The sweep contract: what a sweep folder holds and what the sweeper and its jobs tell each other
through the Optuna study. Defined here once; the sweeper (hydra_plugins/xray_exp_sweeper), the job
(run/trial_hook.py) and `xray-exp sweep` import it.

Optuna 2.10 has no public way to open an existing trial by number or to set attributes on a trial
another process owns; the two private calls that do it live in this module and nowhere else.
"""
from typing import Any

STORAGE_FILE = "study.db"  # default storage: SQLite in the sweep folder
TRIALS_FILE = "trials.csv"  # one row per trial, rewritten after every trial
BEST_FILE = "best.yaml"     # the best COMPLETE trial: number, value, params, run folder
# Optuna keeps no pruner in its storage: the job rebuilds the sweeper's pruner from this system attr.
PRUNER_ATTR = "xray_exp:pruner"
# Which sweep process runs the trial, so a later start can tell a dead owner from a live worker.
OWNER_ATTR = "xray_exp:owner"


def default_storage(sweep_dir) -> str:
    """The storage URL of a sweep folder that names none: SQLite beside the job folders."""
    return f"sqlite:///{sweep_dir / STORAGE_FILE}"


def is_sqlite(storage: str) -> bool:
    """A file database: one host only (SQLite on a network file system corrupts)."""
    return storage.startswith("sqlite:")


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
