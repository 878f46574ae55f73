"""The guide's claims, each run with several seeds into one multirun folder (`xray-exp claims`).

A job is one (claim, seed) pair; its run folder is `<out>/claim=<claim>,seed=<seed>/`, which is what
Hydra's `${hydra.job.override_dirname}` names it when every other override is excluded, so the plain
Hydra grid and this module make the same folders:

    python -m xray_exp -m claim=baseline,batch,[batch,augmentation] seed=0,1 [overrides] \\
        hydra.sweep.dir=<out> 'hydra.sweep.subdir=${hydra.job.override_dirname}' \\
        'hydra.job.config.override_dirname.exclude_keys=[<each override key>]'

What this module adds to that command: it runs only the jobs that have no finished run yet (a
folder whose metrics.json says anything but failed or interrupted); such a run's folder is moved
to `<out>/.retried/` first, because Ultralytics appends to an existing results.csv. It refuses
overrides that would erase a claim (an `epochs=` override sets every claim's epochs, so `schedule`
would equal `baseline`), and a folder holding runs made with other overrides. With `workers` > 1
the grid is cut into that many processes run at once (Ultralytics trains on CPU with one thread
fewer than the cores, so on a small CPU two processes use it better than one).
"""
import contextlib
import fcntl
import functools
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from xray_exp import CONF_DIR
from xray_exp.errors import XrayExpError

log = logging.getLogger(__name__)

CLAIM_GROUP = "claim"
REFERENCE = "baseline"
# Display order of the options of conf/claim/ (any other option there follows, alphabetically).
ORDER = ("baseline", "optimizer", "sgd", "lr", "batch", "warmup", "augmentation", "dropout", "schedule", "data",
         "path_a", "labels_transposed")
# Runs whose folder is redone: a run that failed, one stopped by Ctrl-C/SIGTERM (its metrics.json holds only
# the best so far) or one that never wrote metrics.json (killed hard).
RETRY_REASONS = ("failed", "interrupted")
RETRIED_DIR = ".retried"  # hidden: compare skips hidden folders
LOCK_FILE = ".claims.lock"
# Overrides the command sets itself.
OWN_KEYS = (CLAIM_GROUP, "seed")


Claim = tuple[str, ...]  # one option, or several composed (claim=[batch,augmentation])


@dataclass(frozen=True)
class Job:
    claim: Claim
    seed: int

    @property
    def value(self) -> str:
        """The claim as a Hydra override value: `batch` or `[batch,augmentation]`."""
        return self.claim[0] if len(self.claim) == 1 else f"[{','.join(self.claim)}]"

    @property
    def name(self) -> str:
        """The run folder's name, as Hydra's override_dirname writes it (sorted `key=value`, comma-joined)."""
        return f"{CLAIM_GROUP}={self.value},seed={self.seed}"


def available() -> list[str]:
    """The options of the claim group, in display order."""
    names = {p.stem for p in (CONF_DIR / CLAIM_GROUP).glob("*.yaml")}
    return [n for n in ORDER if n in names] + sorted(names - set(ORDER))


def parse_claims(text: str) -> list[Claim]:
    """`baseline,batch,batch+augmentation` -> [("baseline",), ("batch",), ("batch", "augmentation")]."""
    known = available()
    claims: list[Claim] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        claim = tuple(p.strip() for p in item.split("+"))
        for part in claim:
            if part not in known:
                raise XrayExpError(f"--claims: unknown claim {part!r}; choose from {', '.join(known)} "
                                   "(join claims with + to test them together: batch+augmentation)")
        if claim not in claims:
            claims.append(claim)
    if not claims:
        raise XrayExpError("--claims: no claim given")
    return claims


def parse_value(value: str) -> Claim:
    """A claim override value as it reads in overrides.yaml (`batch`, `[batch,augmentation]`) -> Claim."""
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return tuple(p.strip().strip("'\"") for p in value.split(",") if p.strip())


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The config keys a list of overrides sets (`++claim.epochs=[6,12]` -> claim.epochs)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return [o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides))]


def check_overrides(overrides: Sequence[str]) -> None:
    """Overrides that would collide with what the command sets itself."""
    for key in override_keys(overrides):
        if key in OWN_KEYS:
            raise XrayExpError(f"override {key}=...: xray-exp claims sets {key} itself (use --claims / --seeds)")
        if key.startswith("hydra."):
            raise XrayExpError(f"override {key}: xray-exp claims sets the run folders itself (use --out)")


def hydra_args(claims: Sequence[Claim], seeds: Sequence[int], overrides: Sequence[str], out: Path) -> list[str]:
    """Arguments of `python -m xray_exp` that run the grid claims x seeds into out."""
    values = ",".join(Job(c, 0).value for c in claims)
    exclude = ",".join(dict.fromkeys(override_keys(overrides)))
    return ["-m", f"{CLAIM_GROUP}={values}", f"seed={','.join(map(str, seeds))}", *overrides,
            f"hydra.sweep.dir={out}", "hydra.sweep.subdir=${hydra.job.override_dirname}",
            f"hydra.job.config.override_dirname.exclude_keys=[{exclude}]"]


# ---- claims that overrides would erase -------------------------------------------------------------

def _compose(claim: Claim, overrides: Sequence[str]) -> dict:
    """The config a run of `claim` with `overrides` trains with (resolved; the hydra node left out)."""
    return _composed(claim, tuple(overrides))


@functools.lru_cache(maxsize=None)
def _composed(claim: Claim, overrides: tuple[str, ...]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"{CLAIM_GROUP}={Job(claim, 0).value}", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def _flat(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _changes(claim: Claim, base: dict[str, object], overrides: Sequence[str]) -> set[str]:
    cfg = _flat(_compose(claim, overrides))
    return {k for k in set(cfg) | set(base) if k != CLAIM_GROUP and not k.startswith(f"{CLAIM_GROUP}.")
            and cfg.get(k) != base.get(k)}


def erased(claims: Sequence[Claim], overrides: Sequence[str]) -> dict[Claim, set[str]]:
    """Per claim, the settings it changes against the baseline on its own but no longer changes under
    `overrides` (a preset or command-line value that sets the same key for every claim)."""
    if not overrides:
        return {}
    plain = _flat(_compose((REFERENCE,), []))
    under = _flat(_compose((REFERENCE,), overrides))
    lost = {}
    for claim in claims:
        if claim == (REFERENCE,):
            continue
        gone = _changes(claim, plain, []) - _changes(claim, under, overrides)
        if gone:
            lost[claim] = gone
    return lost


def missing_data(claim: Claim, overrides: Sequence[str]) -> str | None:
    """Why the claim's dataset cannot be had (None when it exists or xray_exp builds it on first use)."""
    ds = _compose(claim, overrides)["dataset"]
    data = Path(ds["data"]).expanduser()
    if data.is_file() or ds.get("build") == "synthetic":
        return None
    sources = [s for s in ds.get("sources") or [] if not Path(s).expanduser().is_file()]
    if ds.get("build") == "merge" and not sources:
        return None
    return f"dataset '{ds['name']}' is missing ({sources[0] if sources else data}); {ds.get('hint')}"


def select(claims: Sequence[Claim] | None, overrides: Sequence[str]) -> tuple[list[Claim], list[str]]:
    """(claims to run, one note per claim left out).

    Given claims must all be runnable: a claim whose data is missing, or that the overrides erase,
    is an error naming it. With none given, every option of conf/claim/ that can run is taken, and
    the others are left out with a note (e.g. `data`, without Path B's sources).
    """
    explicit = claims is not None
    chosen = list(claims) if explicit else [(name,) for name in available()]
    if (REFERENCE,) not in chosen:
        chosen.insert(0, (REFERENCE,))  # every difference is measured against it
    notes, keep = [], []
    lost = erased(chosen, overrides)
    for claim in chosen:
        label = "+".join(claim)
        why = missing_data(claim, overrides)
        if why is None and claim in lost:
            why = (f"the overrides set {', '.join(sorted(lost[claim]))} for every claim, which erases what "
                   f"'{label}' changes")
            if lost[claim] & {"epochs", "patience"}:
                why += " (shorten runs with ++claim.epochs=[old,new] ++claim.patience=[old,new] instead)"
        if why is None:
            keep.append(claim)
        elif explicit or claim == (REFERENCE,):
            raise XrayExpError(f"claim {label}: {why}")
        else:
            notes.append(f"claim {label} left out: {why}")
    return keep, notes


# ---- the folder: what is done, what is left ---------------------------------------------------------

@dataclass
class State:
    finished: dict[Job, Path]
    redo: dict[Job, Path]  # failed or unfinished runs, to move aside and run again


def scan(out: Path, overrides: Sequence[str]) -> State:
    """The claim runs already in out. Runs made with other overrides are an error: their numbers would
    be mixed with the new ones."""
    from xray_exp.analysis.compare import find_runs, read_overrides

    state = State({}, {})
    if not out.is_dir():
        return state
    want = _as_dict(overrides)
    for run in find_runs([out]).runs:
        given = read_overrides(run.path)
        if CLAIM_GROUP not in given or "seed" not in given:
            continue
        rest = _as_dict([f"{k}={v}" for k, v in given.items() if k not in OWN_KEYS])
        if rest != want:
            diff = sorted(set(rest.items()) ^ set(want.items()))
            raise XrayExpError(f"{out} holds runs made with other overrides ({', '.join(f'{k}={v}' for k, v in diff)} "
                               f"differ, e.g. {run.path.name}); use another --out or the same overrides")
        job = Job(parse_value(given[CLAIM_GROUP]), int(given["seed"]))
        if run.record is not None and run.state not in RETRY_REASONS:
            state.finished[job] = run.path
        else:
            state.redo[job] = run.path
    return state


def _as_dict(overrides: Sequence[str]) -> dict[str, str]:
    """key -> value as Hydra reads it, so `x=false` given and `x=False` as Hydra's sweeper writes it
    back to overrides.yaml are the same override (the `+`/`++` prefix does not count)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return {o.key_or_group: repr(o.value()) for o in OverridesParser.create().parse_overrides(list(overrides))}


def plan(claims: Sequence[Claim], seeds: int, state: State) -> list[Job]:
    """Jobs still to run, claims in order, seeds 0..seeds-1."""
    return [Job(c, s) for c in claims for s in range(seeds) if Job(c, s) not in state.finished]


def batches(jobs: Sequence[Job], workers: int) -> list[tuple[list[Claim], list[int]]]:
    """Grids (claims, seeds) covering exactly `jobs`, each run by one process.

    As few as possible (claims with the same pending seeds share a grid: a fresh folder is one grid),
    then, for several workers, each grid cut into `workers` parts by claim (round robin, so the long
    schedule and path_a runs land in different parts), or by seed when it has one claim: every
    process pays Python's and torch's start-up once, not once per run.
    """
    seeds_of: dict[Claim, list[int]] = {}
    for j in jobs:
        seeds_of.setdefault(j.claim, []).append(j.seed)
    grids: dict[tuple[int, ...], list[Claim]] = {}
    for claim, seeds in seeds_of.items():
        grids.setdefault(tuple(seeds), []).append(claim)
    parts = []
    for seeds, claims in grids.items():
        if len(claims) > 1:
            k = min(workers, len(claims))
            parts += [(claims[i::k], list(seeds)) for i in range(k)]
        else:
            k = min(workers, len(seeds))
            parts += [(claims, list(seeds[i::k])) for i in range(k)]
    return parts


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """One `xray-exp claims` per folder at a time: two would run (and move aside) the same jobs."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise XrayExpError(f"another xray-exp claims is running on {out}; wait for it or use another --out") from None
        yield


def move_aside(out: Path, jobs: Sequence[Job], state: State) -> None:
    """Move the old folders of jobs about to run again to out/.retried/ (kept, not deleted)."""
    for job in jobs:
        old = state.redo.get(job)
        if old is not None and old.exists():
            target = out / RETRIED_DIR / f"{old.name}.{time.strftime('%Y%m%d-%H%M%S')}"
            target.parent.mkdir(exist_ok=True)
            os.replace(old, target)
            log.info(f"{old.name}: failed or unfinished before; moved to {target}")


def launch(grids: Sequence[tuple[list[Claim], list[int]]], overrides: Sequence[str], out: Path,
           workers: int) -> list[int]:
    """Run each grid as `python -m xray_exp -m ...`, `workers` processes at a time; their exit codes.

    One process at a time shares this terminal; several write to out/logs/<first job>.log each and
    this process logs one line as each starts and ends.
    """
    codes: list[int] = []
    running: list[tuple[subprocess.Popen, object, str]] = []
    for claims, seeds in grids:
        while len(running) >= workers:
            codes.append(_reap(running))
        cmd = [sys.executable, "-m", "xray_exp", *hydra_args(claims, seeds, overrides, out)]
        what = f"{', '.join('+'.join(c) for c in claims)} x seeds {','.join(map(str, seeds))}"
        if workers == 1:
            log.info("running: " + " ".join(cmd[1:]))
            running.append((subprocess.Popen(cmd), None, what))
        else:
            (out / "logs").mkdir(exist_ok=True)
            logfile = open(out / "logs" / f"{Job(claims[0], seeds[0]).name}.log", "w")
            log.info(f"started {what} > {logfile.name}")
            running.append((subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT), logfile, what))
    while running:
        codes.append(_reap(running))
    return codes


def _reap(running: list) -> int:
    """Wait for one of the running processes to end; its exit code."""
    while True:
        for item in running:
            proc, logfile, what = item
            if proc.poll() is not None:
                running.remove(item)
                if logfile is not None:
                    logfile.close()
                    log.info(f"ended {what} (exit {proc.returncode})")
                return proc.returncode
        time.sleep(0.5)


# ---- the whole command ------------------------------------------------------------------------------

@dataclass
class Outcome:
    jobs: list[Job]        # every (claim, seed) of the selection
    ran: list[Job]         # the ones this call ran (0 when everything was finished)
    finished: list[Job]    # of jobs, those with a finished run afterwards
    command: list[str]     # the plain `python -m xray_exp` arguments of the whole grid


def run(out: str | Path, seeds: int, claims: Sequence[Claim] | None, overrides: Sequence[str],
        workers: int = 1, dry_run: bool = False) -> Outcome:
    """Run every selected claim x seeds 0..seeds-1 into out, skipping finished runs."""
    if seeds < 1:
        raise XrayExpError(f"--seeds must be at least 1, got {seeds}")
    if workers < 1:
        raise XrayExpError(f"--workers must be at least 1, got {workers}")
    check_overrides(overrides)
    out = Path(out).expanduser().resolve()
    chosen, notes = select(claims, overrides)
    jobs = [Job(c, s) for c in chosen for s in range(seeds)]
    command = hydra_args(chosen, list(range(seeds)), overrides, out)
    for line in notes:
        log.info(line)
    if dry_run:
        state = scan(out, overrides)
        return Outcome(jobs, [], [j for j in jobs if j in state.finished], command)
    with locked(out):
        state = scan(out, overrides)
        todo = plan(chosen, seeds, state)
        log.info(f"{len(chosen)} claims x {seeds} seeds = {len(jobs)} runs in {out}: "
                 f"{len(jobs) - len(todo)} finished, {len(todo)} to run")
        move_aside(out, todo, state)
        if todo:
            launch(batches(todo, workers), overrides, out, workers)  # a failed run shows in its metrics.json
        after = scan(out, overrides)
    return Outcome(jobs, todo, [j for j in jobs if j in after.finished], command)
