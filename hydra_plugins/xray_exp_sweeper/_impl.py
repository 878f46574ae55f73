"""The xray_optuna sweep loop: ask one trial, launch its job, tell the outcome, rewrite the tables.

Built on hydra-optuna-sweeper's OptunaSweeperImpl (search-space parsing, override building) with the
loop replaced, because the stock one restarts job numbering and counts `n_trials` again on every run,
hides the trial from the job, and never tells PRUNED. Here:
- `n_trials` is the study's total: COMPLETE + PRUNED + RUNNING trials count, FAIL ones do not.
- A trial's job folder is its trial number, so folders continue across resumes and workers.
- Any number of sweep processes may start together on one study: creating it is retried, trial 0 (the
  config's own values) is whoever asks trial number 0, and on SQLite the asks take turns (exact budget).
- RUNNING trials whose sweep process is gone are told FAIL (`_reap_stale`, the one place for that rule).
- The job gets `++trial.number/storage/study_name` and reports each epoch itself (xray_exp/run/trial_hook.py);
  the job's metrics.json says whether it stopped early (pruned / gate -> PRUNED) or went NaN (FAIL).
Every difference from the stock sweeper is listed in docs/sweeper.md; how it works is in docs/hydra.md.
"""
import contextlib
import csv
import datetime
import fcntl
import functools
import io
import logging
import math
import os
import random
import socket
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

# Before optuna imports alembic, which logs each of its plugins at INFO into the sweep log; Optuna's schema
# check on an existing study would log them again.
logging.getLogger("alembic").setLevel(logging.WARNING)

import optuna  # noqa: E402
import psutil  # an Ultralytics dependency
import sqlalchemy.engine
import sqlalchemy.exc
import yaml
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.xray_exp_sweeper.config import pruner_from_spec
from xray_exp.errors import Terminated, XrayExpError
from xray_exp.files import write_text
from xray_exp.run.run_folder import read_metrics
from xray_exp.run.trial_hook import start_heartbeat
from xray_exp.study import (BEST_FILE, HEARTBEAT_ATTR, OPTIMIZATION_RESULTS_FILE, OWNER_ATTR, PRUNER_ATTR,
                            TRIALS_FILE, check_storage, default_storage, distribution_contains, fix_trial_params, is_sqlite,
                            open_storage, set_trial_user_attrs, stale_trial_numbers)

log = logging.getLogger(__name__)

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
EARLY_STOPS = ("pruned", "gate")  # metrics.json stop reasons told to Optuna as PRUNED
RESULT_ATTRS = ("epochs_completed", "wall_s", "stop_reason", "fail_reason", "run_dir")
# max_failure_rate is judged once this many trials of this run have ended: one failure in the first two
# trials says little about a 20-trial search (hydra-optuna-sweeper judges every batch of n_jobs instead).
MIN_TRIALS_FOR_FAILURE_RATE = 5
# A RUNNING trial with no recorded owner this old is orphaned: our sweeper records the owner right after
# asking (milliseconds), so it was killed in between, or the stock optuna sweeper (which records none) ran it.
OWNERLESS_GRACE_S = 300
# Sweep processes started together on a new study race to create its tables and the study row; the
# losers retry for this long (on SQLite, also "database is locked" while another creates the schema).
CREATE_RETRY_S = 60
SQLITE_MAGIC = b"SQLite format 3\x00"  # the first bytes of every SQLite database file


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a trial (seen by the job or the sweeper): the trial is FAIL and the tables
    are rewritten."""

    def __init__(self, number: int, signal_name: str) -> None:
        super().__init__(f"trial {number}")
        self.signal_name = signal_name


class XrayOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(self, *args: Any, pruner: Any, enqueue_config_values: bool, heartbeat_interval: Optional[int],
                 grace_period: int) -> None:
        super().__init__(*args)
        self.pruner = pruner
        self.enqueue_config_values = enqueue_config_values
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.heartbeat: Optional[int] = None  # the interval, once the storage is known to be a database server
        self.warned: set = set()

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.pruner_spec = OmegaConf.to_container(config.hydra.sweeper.pruner, resolve=True)
        self.sampler_cfg = config.hydra.sweeper.sampler

    def sweep(self, arguments: List[str]) -> None:
        self._check_supported()
        distributions, fixed = self._search_space(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        self.storage = self.storage or default_storage(sweep_dir)
        check_storage(self.storage, self.config.hydra.launcher.get("_target_", ""))  # SQLite across hosts
        sweep_dir.mkdir(parents=True, exist_ok=True)
        _check_sqlite_file(_sqlite_file(self.storage), sweep_dir)
        self.rdb = _retrying(self._open_storage, f"{_storage_name(self.storage)}: cannot open as an Optuna study storage")
        study = _retrying(self._create_study, f"{_storage_name(self.storage)}: cannot create or load study "
                                              f"'{self.study_name}'")
        self.study_name = study.study_name
        log.info(f"Study {self.study_name} in {self.storage}: {len(study.trials)} trials so far, "
                 f"n_trials={self.n_trials} in total, pruner {type(self.pruner).__name__}")
        with self._study_lock():
            self._reap_stale(self._load())
        self._check_job_folders(sweep_dir)
        self.start_values, self.start_outside = self._start_values(distributions)

        launched = failed = 0
        while True:
            trial = self._ask()
            if trial is None:
                break
            state, value, attrs = self._run(trial, distributions, fixed, sweep_dir)
            log.info(f"trial {trial.number}: {state.name} value={value} {attrs.get('fail_reason') or ''}")
            launched += 1
            failed += state == TrialState.FAIL
            self._write_tables(sweep_dir)
            if launched >= MIN_TRIALS_FOR_FAILURE_RATE and failed / launched > self.max_failure_rate:
                raise XrayExpError(self._failure_line(failed, launched, attrs))
            # FAIL does not count toward n_trials, so a job that always fails would otherwise loop forever.
            if failed >= self.n_trials:
                if failed / launched > self.max_failure_rate:
                    raise XrayExpError(self._failure_line(failed, launched, attrs))
                log.error(f"{failed} trials failed in this run (n_trials={self.n_trials}); stopping")
                break
        self._write_tables(sweep_dir)
        best = _best(self._load())
        if best is not None:
            log.info(f"Best trial {best.number}: value {best.value} params {best.params}")

    def _check_supported(self) -> None:
        if self.n_trials < 1:
            raise XrayExpError(f"hydra.sweeper.n_trials must be at least 1 (the study's total), got {self.n_trials}")
        if self.n_jobs != 1:
            raise XrayExpError("xray_optuna runs one trial at a time per process (n_jobs=1); "
                               "for parallel trials run `xray-exp sweep --workers N`")
        if isinstance(self.sampler, functools.partial):
            raise XrayExpError("the grid sampler is not supported by xray_optuna; "
                               "use a plain Hydra grid multirun: -m key=a,b other=c,d")
        if len(self._get_directions()) != 1:
            raise XrayExpError("xray_optuna optimises one objective (direction must be a single value)")
        pruner_from_spec(self.pruner_spec)  # the jobs rebuild it from this spec: refuse now what they would refuse

    def _search_space(self, arguments: List[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """Same rules as the stock sweeper: params + command-line sweeps; plain values are fixed.
        Parsed one by one, so a bad one is named."""
        self._process_searchspace_config()
        distributions: Dict[str, Any] = dict(self.search_space_distributions or {})
        fixed: Dict[str, Any] = {}
        for argument in self._parse_sweeper_params_config() + list(arguments):
            try:
                dists, values = create_params_from_overrides([argument])
            except Exception as e:  # Hydra's parse errors, Optuna's ValueError (a log interval from 0), ...
                raise XrayExpError(f"search space {argument!r}: {_parse_detail(e)}") from None
            distributions.update(dists)
            fixed.update(values)
        return {k: v for k, v in distributions.items() if k not in fixed}, fixed

    def _start_values(self, distributions: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
        """Trial 0's parameters: the composed config's own value of each searched key (a config group's
        option name, e.g. optimizer=adamw), where the search space contains it; and `key=value` of those
        it does not contain (they are sampled)."""
        if not self.enqueue_config_values:
            return {}, []
        choices = self.config.hydra.runtime.choices
        values, outside = {}, []
        for name, distribution in distributions.items():
            key = name.lstrip("+~")
            value = choices[key] if key in choices else OmegaConf.select(self.config, key, default=None)
            if value is None:
                continue  # a key the config does not have (`+key=...`): nothing to start from
            if not isinstance(value, (DictConfig, ListConfig)) and distribution_contains(distribution, value):
                values[name] = value
            else:
                outside.append(f"{name}={value if not isinstance(value, (DictConfig, ListConfig)) else '<node>'}")
        return values, outside

    def _sampler(self, n_existing: int) -> Any:
        """A seeded sampler is re-seeded per trial (seed + trials so far): a resumed study continues the
        sequence instead of replaying the first run's random draws."""
        seed = self.sampler_cfg.get("seed")
        return self.sampler if seed is None else instantiate(self.sampler_cfg, seed=int(seed) + n_existing)

    # --- the study ---

    def _open_storage(self) -> Any:
        """One storage object for the whole sweep (an RDB engine is costly to build); each study handle
        wraps it afresh (see _load)."""
        if self.storage.startswith("redis"):
            return self.storage
        if self.heartbeat_interval and not is_sqlite(self.storage):
            self.heartbeat = self.heartbeat_interval
            return optuna.storages.RDBStorage(self.storage, heartbeat_interval=self.heartbeat_interval,
                                              grace_period=self.grace_period)
        return open_storage(self.storage)  # the one the in-process jobs open too

    def _create_study(self) -> optuna.Study:
        return optuna.create_study(study_name=self.study_name, storage=self.rdb, sampler=self.sampler,
                                   pruner=self.pruner, direction=self._get_directions()[0], load_if_exists=True)

    def _load(self) -> optuna.Study:
        # A fresh handle each time: Optuna caches the trials a handle created, so the job's reports
        # (written through its own handle) would be invisible to an old one.
        return optuna.load_study(study_name=self.study_name, storage=self.rdb, sampler=self.sampler,
                                 pruner=self.pruner)

    @contextlib.contextmanager
    def _study_lock(self) -> Iterator[None]:
        """On SQLite, the sweep processes of one machine take turns (an flock on the folder of the database
        file) to reap, count and ask, so n_trials is exact, and to read the study and write its tables, so
        the last tables written are the newest. An RDB server has no such lock: there two workers asking
        for the last trial at once make one extra trial, told FAIL (see _ask)."""
        path = _sqlite_file(self.storage)
        if path is None:
            yield
            return
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _ask(self) -> Optional[optuna.trial.Trial]:
        """The next trial of the budget, owned by this process; None when the budget is spent."""
        with self._study_lock():
            study = self._load()
            self._reap_stale(study)
            trials = study.get_trials(deepcopy=False)
            if sum(t.state in COUNTED for t in trials) >= self.n_trials:
                return None
            study.sampler = self._sampler(len(trials))
            trial = study.ask()
            trial.set_system_attr(OWNER_ATTR, _owner())
            trial.set_system_attr(PRUNER_ATTR, self.pruner_spec)
            if self.heartbeat:
                trial.set_system_attr(HEARTBEAT_ATTR, self.heartbeat)
        if sum(t.state in COUNTED for t in study.get_trials(deepcopy=False) if t.number < trial.number) >= self.n_trials:
            # Another worker took the last trial of the budget between our count and our ask (RDB server).
            self._tell(trial.number, TrialState.FAIL, None, {"fail_reason": "budget taken by another worker"})
            return None
        return trial

    def _reap_stale(self, study: optuna.Study) -> None:
        """The one place where RUNNING trials whose sweep process is gone are told FAIL, so they stop counting
        toward n_trials. Gone means: the owner recorded on the trial ran on this host and that process no
        longer exists (same pid and start time), or no owner is recorded and the trial started more than
        OWNERLESS_GRACE_S ago. A trial owned by another host is left alone: it cannot be checked from here.
        On a database server with heartbeats, gone means a heartbeat older than grace_period, on any host."""
        if self.heartbeat:
            for number in stale_trial_numbers(study):
                reason = f"interrupted: no heartbeat for over {self.grace_period} s (its process or host is gone)"
                log.warning(f"trial {number}: FAIL ({reason})")
                self._tell(number, TrialState.FAIL, None, {"fail_reason": reason})
        now = datetime.datetime.now()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.system_attrs.get(OWNER_ATTR)
            if owner is None:
                age = (now - t.datetime_start).total_seconds() if t.datetime_start else math.inf
                if age <= OWNERLESS_GRACE_S:
                    continue
                reason = f"interrupted: RUNNING for {age:.0f} s with no sweep process recorded as its owner"
            elif self.heartbeat:
                continue  # its heartbeat decides (above)
            elif owner["host"] != socket.gethostname():
                if t.number not in self.warned:
                    self.warned.add(t.number)
                    log.warning(f"trial {t.number} is RUNNING on {owner['host']}; left as it is (cannot check from here)")
                continue
            elif _alive(owner):
                continue
            else:
                reason = f"interrupted: sweep process {owner['pid']} ended during the trial"
            log.warning(f"trial {t.number}: FAIL ({reason})")
            self._tell(t.number, TrialState.FAIL, None, {"fail_reason": reason})

    def _tell(self, number: int, state: TrialState, value: Optional[float], attrs: Dict[str, Any]) -> None:
        study = self._load()
        try:
            set_trial_user_attrs(study, number, {k: v for k, v in attrs.items() if v is not None})
            study.tell(number, value, state=state)  # PRUNED takes the last reported epoch's value
        except RuntimeError as e:  # another process finished it first (e.g. reaped it): keep its verdict
            log.warning(f"trial {number}: not told {state.name} ({e})")

    # --- one trial ---

    def _run(self, trial: optuna.trial.Trial, distributions: Dict[str, Any], fixed: Dict[str, Any],
             sweep_dir: Path) -> Tuple[TrialState, Optional[float], Dict[str, Any]]:
        """Launch the trial's job and tell Optuna how it ended. Whatever happens, the trial is not left RUNNING."""
        # Heartbeats from here until told: they cover the wait for the job (a SLURM queue) and its start.
        beating = start_heartbeat(self._load(), trial.number, self.heartbeat) if self.heartbeat else None
        signal_name = "SIGINT"  # unless the sweeper itself sees a SIGTERM (python -m xray_exp raises Terminated)
        try:
            if trial.number == 0 and self.enqueue_config_values:
                fix_trial_params(trial, self.start_values)
                if self.start_outside:
                    log.warning(f"trial 0 is not the config's own values: {', '.join(self.start_outside)} "
                                "not in the search space, so sampled")
            # `++`: the app may have no `trial:` node (ours declares one; a plain Hydra app does not).
            overrides = [*self._configure_trials([trial], distributions, fixed)[0],
                         f"++trial.number={trial.number}", f"++trial.study_name={_quote(self.study_name)}",
                         f"++trial.storage={_quote(self.storage)}"]
            [ret] = self.launcher.launch([overrides], initial_job_idx=trial.number)
            state, value, attrs = _outcome(ret)
        except KeyboardInterrupt as e:
            state, value, attrs = TrialState.FAIL, None, {"fail_reason": "interrupted"}
            signal_name = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
        except Exception as e:  # the job could not even be composed (e.g. a bad override value)
            state, value, attrs = TrialState.FAIL, None, {"fail_reason": _reason(e)}
        self._tell(trial.number, state, value, attrs)
        if beating is not None:
            beating.set()
        if attrs.get("fail_reason") == "interrupted":  # Ctrl-C or SIGTERM, seen by the sweeper or by the job
            self._write_tables(sweep_dir)
            raise SweepInterrupted(trial.number, signal_name)
        return state, value, attrs

    def _check_job_folders(self, sweep_dir: Path) -> None:
        """Job folder N belongs to trial N: a folder beyond the study's trials would be overwritten.
        Folders are listed before the study is read: a worker may be creating trial and folder meanwhile."""
        folders = [int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        known = len(self._load().get_trials(deepcopy=False))
        stray = sorted(n for n in folders if n >= known)
        if stray:
            raise XrayExpError(f"{sweep_dir} holds job folders {stray} that study '{self.study_name}' in "
                               f"{_storage_name(self.storage)} does not know (was the storage deleted or emptied?); "
                               "use another study_name or hydra.sweep.dir")

    def _failure_line(self, failed: int, launched: int, attrs: Dict[str, Any]) -> str:
        return (f"{failed} of {launched} trials failed (max_failure_rate={self.max_failure_rate}); "
                f"last: {attrs.get('fail_reason')}")

    # --- the tables ---

    def _write_tables(self, sweep_dir: Path) -> None:
        with self._study_lock():
            study = self._load()
            write_text(sweep_dir / TRIALS_FILE, trials_csv(study.get_trials(deepcopy=False)))
            best = _best(study)
            if best is None:
                return
            record = {"study_name": self.study_name, "trial": best.number,
                      "objective": OmegaConf.select(self.config, "objective"), "value": best.value,
                      "params": dict(best.params), "run_dir": best.user_attrs.get("run_dir")}
            write_text(sweep_dir / BEST_FILE, yaml.safe_dump(record, sort_keys=False))
            # As hydra-optuna-sweeper writes it (it does so once, at the end of a sweep).
            stock = {"name": "optuna", "best_params": dict(best.params), "best_value": best.value}
            write_text(sweep_dir / OPTIMIZATION_RESULTS_FILE, yaml.safe_dump(stock, sort_keys=False))


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
    stop_reason = record.get("stop_reason")
    attrs = {"run_dir": str(run_dir), "stop_reason": stop_reason,
             "epochs_completed": record.get("epochs_completed"), "wall_s": record.get("wall_s")}
    if stop_reason in ("nan", "interrupted"):  # whether the job then raised or returned
        return TrialState.FAIL, None, {**attrs, "fail_reason": stop_reason}
    try:
        # Reading a failed job's return value re-raises its exception, after Hydra wrote "Error executing
        # job with overrides: [...]" to stderr; the sweep logs the trial's FAIL and reason in one line instead.
        with contextlib.redirect_stderr(io.StringIO()):
            value = float(ret.return_value)
    except Exception as e:
        return TrialState.FAIL, None, {**attrs, "fail_reason": _reason(e)}
    if not math.isfinite(value):
        return TrialState.FAIL, None, {**attrs, "fail_reason": "nan"}
    if stop_reason in EARLY_STOPS:
        return TrialState.PRUNED, None, attrs
    return TrialState.COMPLETE, value, attrs


def _best(study: optuna.Study) -> Optional[FrozenTrial]:
    """The best COMPLETE trial (None before one completed), from the trials already read: asking the storage
    (study.best_trial) is one more query per table write."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(complete, key=lambda t: t.value) if complete else None


def _check_sqlite_file(path: Optional[Path], sweep_dir: Path) -> None:
    """Refuse, before SQLite touches it, a study file that cannot hold the study of this sweep folder: one
    that is not an SQLite database, or one that is missing or empty (SQLite would start a new study in it)
    while the folder holds job folders. An empty file alone is normal: another sweep process just created it."""
    if path is None:
        return
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        head = None
    except OSError as e:
        raise XrayExpError(f"{path}: cannot read the study storage ({e.strerror})") from None
    if head and head != SQLITE_MAGIC:
        raise XrayExpError(f"{path} is not an SQLite database, so it holds no study (overwritten?); move it away "
                           "to start a new study, or name another hydra.sweeper.storage")
    folders = sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not head and folders:
        raise XrayExpError(f"{path} {'is empty' if head is not None else 'does not exist'}, but {sweep_dir} holds "
                           f"job folders {folders}: the study they belong to is lost (truncated?); "
                           "use another hydra.sweep.dir")


def _retrying(open_: Any, what: str) -> Any:
    """open_() retried while other sweep processes create the same storage or study (its tables, the alembic
    stamp, the study row: an IntegrityError, "already exists" or "database is locked"); any other error,
    or racing past CREATE_RETRY_S, is one line: `what (first line of the error)`."""
    deadline = time.monotonic() + CREATE_RETRY_S
    while True:
        try:
            return open_()
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.OptunaError, KeyError) as e:
            cause = e.__cause__ if isinstance(e, optuna.exceptions.StorageInternalError) and e.__cause__ else e
            if not _racing(cause) or time.monotonic() > deadline:
                raise XrayExpError(f"{what} ({_first_line(cause)})") from None
            time.sleep(random.uniform(0.05, 0.3))


def _sqlite_file(url: str) -> Optional[Path]:
    """The database file of a SQLite storage URL (None for other storages and in-memory SQLite)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _storage_name(url: str) -> str:
    """A SQLite storage by its file (the culprit to name), any other by its URL without the password."""
    path = _sqlite_file(url)
    if path is not None:
        return str(path)
    try:
        return sqlalchemy.engine.make_url(url).__repr__()  # masks the password
    except sqlalchemy.exc.ArgumentError:
        return url


def _racing(e: BaseException) -> bool:
    """An error another process's concurrent creation causes (DuplicatedStudyError, KeyError: the study was
    created, or not yet visible, between the check and the insert)."""
    if isinstance(e, (sqlalchemy.exc.IntegrityError, optuna.exceptions.DuplicatedStudyError, KeyError)):
        return True
    text = str(e).lower()
    return isinstance(e, sqlalchemy.exc.OperationalError) and ("locked" in text or "already exists" in text)


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


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _parse_detail(e: BaseException) -> str:
    """What is wrong, from Hydra's multi-line parse error (which repeats the override and links its grammar)."""
    lines = [line for line in str(e).splitlines()
             if line.strip() and not line.startswith(("Error parsing override", "See https://"))]
    return "; ".join(lines) or type(e).__name__


def _reason(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def _blank(value: Any) -> Any:
    return "" if value is None else value
