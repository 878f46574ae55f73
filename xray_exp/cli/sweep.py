"""`xray-exp sweep --workers N [overrides...]`: N sweep processes sharing one Optuna study.

Each worker is `python -m xray_exp -m <overrides>` with the xray_optuna sweeper and n_jobs=1; they
share the study through its storage URL, so `n_trials` stays the study's total and job folder N is
trial N whichever worker ran it. Worker logs go to <sweep dir>/worker-<k>.log.
"""
import logging
import subprocess
import sys
import time
from pathlib import Path

from xray_exp import CONF_DIR
from xray_exp.errors import XrayExpError
from xray_exp.study import TRIALS_FILE, default_storage

log = logging.getLogger(__name__)

SEED_STRIDE = 10007  # worker k samples with seed + k * stride: workers do not repeat each other's draws


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="run an Optuna search with several worker processes on one study",
                              description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. search=path_a epochs=50")
    p.set_defaults(func=handle)


def handle(args) -> int:
    if args.workers < 1:
        raise XrayExpError(f"--workers must be at least 1, got {args.workers}")
    plan = sweep_plan(args.overrides)
    plan["dir"].mkdir(parents=True, exist_ok=True)
    procs = []
    for k in range(args.workers):
        if k == 1 and not _wait_for_study(plan, procs[0]):
            break  # worker 0 ended before the study existed: the others would fail the same way
        procs.append(_start_worker(plan, args.overrides, k))
    codes = [p.wait() for p in procs]
    for p in procs:
        p.log.close()
    log.info(f"study {plan['study_name']}: {plan['dir'] / TRIALS_FILE} (worker exit codes {codes})")
    return next((c for c in codes if c != 0), 0)


def sweep_plan(overrides: list[str]) -> dict:
    """Study name, sweep folder, storage URL and sampler seed the workers must share."""
    from hydra import compose, initialize_config_dir

    from hydra_plugins.xray_exp_sweeper.config import XrayOptunaSweeperConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    if sweeper.get("_target_") != XrayOptunaSweeperConf._target_:
        raise XrayExpError("xray-exp sweep needs the xray_optuna sweeper: add a search preset (e.g. search=path_a)")
    if not sweeper.study_name:
        raise XrayExpError("xray-exp sweep needs hydra.sweeper.study_name: workers share the study by name")
    sweep_dir = Path(cfg.hydra.sweep.dir).resolve()
    return {"study_name": sweeper.study_name, "dir": sweep_dir,
            "storage": sweeper.storage or default_storage(sweep_dir), "seed": sweeper.sampler.get("seed")}


def _start_worker(plan: dict, overrides: list[str], k: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "xray_exp", "-m", *overrides, f"hydra.sweep.dir={plan['dir']}",
           f"hydra.sweeper.storage='{plan['storage']}'", "hydra.sweeper.n_jobs=1"]
    if plan["seed"] is not None:
        cmd.append(f"hydra.sweeper.sampler.seed={int(plan['seed']) + k * SEED_STRIDE}")
    out = (plan["dir"] / f"worker-{k}.log").open("w")
    log.info(f"worker {k}: {' '.join(cmd[1:])} > {out.name}")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    proc.log = out  # closed by handle() once the worker ended
    return proc


def _wait_for_study(plan: dict, first: subprocess.Popen) -> bool:
    """Start the other workers once worker 0 created the study and its first trial, so they neither race
    to create the schema nor enqueue the start configuration twice."""
    import optuna

    while first.poll() is None:
        try:
            if optuna.load_study(study_name=plan["study_name"], storage=plan["storage"]).get_trials(deepcopy=False):
                return True
        except Exception:  # no study or no tables yet (KeyError, OperationalError): keep waiting
            pass
        time.sleep(0.5)
    return first.returncode == 0
