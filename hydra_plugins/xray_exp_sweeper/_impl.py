"""The xray_optuna sweep loop: ask one trial, launch its job, tell the outcome, rewrite the tables.

Built on hydra-optuna-sweeper's OptunaSweeperImpl (search-space parsing, override building) with the
loop replaced, because the stock one restarts job numbering and counts `n_trials` again on every run,
hides the trial from the job, and never tells PRUNED. Here:
- `n_trials` is the study's total: COMPLETE + PRUNED + RUNNING trials count, FAIL ones do not.
- A trial's job folder is its trial number, so folders continue across resumes and workers.
- Trials left RUNNING by a sweep process that is gone (kill -9) are told FAIL on the next start.
- The job gets `trial.number/storage/study_name` and reports each epoch itself (xray_exp/run/trial_hook.py);
  the job's metrics.json says whether it stopped early (pruned / gate -> PRUNED).
"""
import csv
import functools
import io
import logging
import math
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import optuna
import psutil  # an Ultralytics dependency
import yaml
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from xray_exp.errors import XrayExpError
from xray_exp.files import write_text
from xray_exp.run.run_folder import read_metrics
from xray_exp.study import (BEST_FILE, OWNER_ATTR, PRUNER_ATTR, TRIALS_FILE, default_storage,
                            set_trial_user_attrs)

log = logging.getLogger(__name__)
# Optuna's schema check on an existing study logs every alembic plugin at INFO into the sweep log.
logging.getLogger("alembic").setLevel(logging.WARNING)

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
EARLY_STOPS = ("pruned", "gate")  # metrics.json stop reasons told to Optuna as PRUNED
RESULT_ATTRS = ("epochs_completed", "wall_s", "stop_reason", "fail_reason", "run_dir")


class XrayOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(self, *args: Any, pruner: Any, enqueue_config_values: bool) -> None:
        super().__init__(*args)
        self.pruner = pruner
        self.enqueue_config_values = enqueue_config_values

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.pruner_spec = OmegaConf.to_container(config.hydra.sweeper.pruner, resolve=True)
        self.sampler_cfg = config.hydra.sweeper.sampler

    def sweep(self, arguments: List[str]) -> None:
        self._check_supported()
        distributions, fixed = self._search_space(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.storage = self.storage or default_storage(sweep_dir)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                    pruner=self.pruner, direction=self._get_directions()[0], load_if_exists=True)
        self.study_name = study.study_name
        log.info(f"Study {self.study_name} in {self.storage}: {len(study.trials)} trials so far, "
                 f"n_trials={self.n_trials} in total, pruner {type(self.pruner).__name__}")
        self._fail_orphans(study)
        _check_job_folders(study, sweep_dir)
        if self.enqueue_config_values and not study.trials:
            values = {name: OmegaConf.select(self.config, name) for name in distributions}
            with warnings.catch_warnings():  # enqueue_trial is "experimental" in Optuna 2.10, and stable since
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.enqueue_trial({k: v for k, v in values.items() if v is not None})

        launched = failed = 0
        while True:
            # A fresh handle each round: Optuna caches the trials a handle created, so the job's
            # reports (written through its own handle) would be invisible to this one.
            study = self._load()
            trials = study.get_trials(deepcopy=False)
            if sum(t.state in COUNTED for t in trials) >= self.n_trials:
                break
            study.sampler = self._sampler(len(trials))
            trial = study.ask()
            if sum(t.state in COUNTED for t in study.get_trials(deepcopy=False) if t.number < trial.number) >= self.n_trials:
                # Another worker took the last trial of the budget between our count and our ask.
                self._tell(trial.number, TrialState.FAIL, None, {"fail_reason": "budget taken by another worker"})
                break
            trial.set_system_attr(PRUNER_ATTR, self.pruner_spec)
            trial.set_system_attr(OWNER_ATTR, _owner())
            overrides = [*self._configure_trials([trial], distributions, fixed)[0],
                         f"trial.number={trial.number}", f"trial.study_name={_quote(self.study_name)}",
                         f"trial.storage={_quote(self.storage)}"]
            try:
                [ret] = self.launcher.launch([overrides], initial_job_idx=trial.number)
                state, value, attrs = _outcome(ret)
            except KeyboardInterrupt:
                self._tell(trial.number, TrialState.FAIL, None, {"fail_reason": "interrupted (KeyboardInterrupt)"})
                raise
            except Exception as e:  # the job could not even be composed (e.g. a bad override value)
                state, value, attrs = TrialState.FAIL, None, {"fail_reason": _reason(e)}
            self._tell(trial.number, state, value, attrs)
            log.info(f"trial {trial.number}: {state.name} value={value} {attrs.get('fail_reason') or ''}")
            launched += 1
            failed += state == TrialState.FAIL
            self._write_tables(sweep_dir)
            if failed / launched > self.max_failure_rate:
                raise XrayExpError(f"{failed} of {launched} trials failed (max_failure_rate={self.max_failure_rate});"
                                   f" last: {attrs.get('fail_reason')}")
            # FAIL does not count toward n_trials, so a job that always fails would otherwise loop forever.
            if failed >= self.n_trials:
                log.error(f"{failed} trials failed in this run (n_trials={self.n_trials}); stopping")
                break
        self._write_tables(sweep_dir)
        best = _best(self._load())
        if best is not None:
            log.info(f"Best trial {best.number}: value {best.value} params {best.params}")

    def _check_supported(self) -> None:
        if self.n_jobs != 1:
            raise XrayExpError("xray_optuna runs one trial at a time per process (n_jobs=1); "
                               "for parallel trials run `xray-exp sweep --workers N`")
        if isinstance(self.sampler, functools.partial):
            raise XrayExpError("the grid sampler is not supported by xray_optuna; "
                               "use a plain Hydra grid multirun: -m key=a,b other=c,d")
        if len(self._get_directions()) != 1:
            raise XrayExpError("xray_optuna optimises one objective (direction must be a single value)")

    def _search_space(self, arguments: List[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """Same rules as the stock sweeper: params + command-line sweeps; plain values are fixed."""
        self._process_searchspace_config()
        distributions, fixed = create_params_from_overrides(self._parse_sweeper_params_config() + list(arguments))
        distributions = {**(self.search_space_distributions or {}), **distributions}
        return {k: v for k, v in distributions.items() if k not in fixed}, fixed

    def _sampler(self, n_existing: int) -> Any:
        """A seeded sampler is re-seeded per trial (seed + trials so far): a resumed study continues the
        sequence instead of replaying the first run's random draws."""
        seed = self.sampler_cfg.get("seed")
        return self.sampler if seed is None else instantiate(self.sampler_cfg, seed=int(seed) + n_existing)

    def _load(self) -> optuna.Study:
        return optuna.load_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                 pruner=self.pruner)

    def _tell(self, number: int, state: TrialState, value: Optional[float], attrs: Dict[str, Any]) -> None:
        study = self._load()
        set_trial_user_attrs(study, number, attrs)
        study.tell(number, value, state=state)  # PRUNED takes the last reported epoch's value

    def _fail_orphans(self, study: optuna.Study) -> None:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.system_attrs.get(OWNER_ATTR)
            if owner is None or _alive(owner):
                continue
            if owner["host"] != socket.gethostname():
                log.warning(f"trial {t.number} is RUNNING on {owner['host']}; left as it is (cannot check from here)")
                continue
            log.warning(f"trial {t.number} was left RUNNING by sweep process {owner['pid']}, which is gone: FAIL")
            self._tell(t.number, TrialState.FAIL, None,
                       {"fail_reason": f"interrupted: sweep process {owner['pid']} ended during the trial"})

    def _write_tables(self, sweep_dir: Path) -> None:
        study = self._load()
        write_text(sweep_dir / TRIALS_FILE, trials_csv(study.get_trials(deepcopy=False)))
        best = _best(study)
        if best is not None:
            record = {"study_name": self.study_name, "trial": best.number,
                      "objective": OmegaConf.select(self.config, "objective"), "value": best.value,
                      "params": dict(best.params), "run_dir": best.user_attrs.get("run_dir")}
            write_text(sweep_dir / BEST_FILE, yaml.safe_dump(record, sort_keys=False))


def trials_csv(trials: List[FrozenTrial]) -> str:
    """One row per trial: number, state, searched params, objective, then how the run ended."""
    params = sorted({name for t in trials for name in t.params})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "state", *params, "objective", *RESULT_ATTRS])
    for t in trials:
        writer.writerow([t.number, t.state.name, *(t.params.get(p, "") for p in params),
                         "" if t.value is None else t.value, *(_blank(t.user_attrs.get(a)) for a in RESULT_ATTRS)])
    return out.getvalue()


def _outcome(ret: Any) -> Tuple[TrialState, Optional[float], Dict[str, Any]]:
    """The job's end -> (Optuna state, value to tell, user attrs), from its return and metrics.json."""
    run_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir)
    try:
        record = read_metrics(run_dir)
    except XrayExpError:
        record = {}  # the job failed before training started
    attrs = {"run_dir": str(run_dir), "stop_reason": record.get("stop_reason"),
             "epochs_completed": record.get("epochs_completed"), "wall_s": record.get("wall_s")}
    try:
        value = float(ret.return_value)  # re-raises the job's exception if it failed
    except Exception as e:
        return TrialState.FAIL, None, {**attrs, "fail_reason": _reason(e)}
    if not math.isfinite(value):
        return TrialState.FAIL, None, {**attrs, "fail_reason": f"objective is not finite ({value})"}
    if record.get("stop_reason") in EARLY_STOPS:
        return TrialState.PRUNED, None, attrs
    return TrialState.COMPLETE, value, attrs


def _best(study: optuna.Study) -> Optional[FrozenTrial]:
    return study.best_trial if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) else None


def _check_job_folders(study: optuna.Study, sweep_dir: Path) -> None:
    """Job folder N belongs to trial N: a folder beyond the study's trials would be overwritten."""
    known = len(study.trials)
    stray = sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) >= known)
    if stray:
        raise XrayExpError(f"{sweep_dir} holds job folders {stray} that study '{study.study_name}' does not know "
                           "(was its storage deleted?); use another study_name or hydra.sweep.dir")


def _owner() -> Dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": psutil.Process(pid).create_time()}


def _alive(owner: Dict[str, Any]) -> bool:
    """The owner process still runs (same host, same pid, same start time: pids get reused)."""
    if owner["host"] != socket.gethostname() or not psutil.pid_exists(owner["pid"]):
        return False
    try:
        return abs(psutil.Process(owner["pid"]).create_time() - owner["started"]) < 1e-3
    except psutil.NoSuchProcess:
        return False


def _reason(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def _blank(value: Any) -> Any:
    return "" if value is None else value
