"""A sweep job's side of its Optuna trial: report the objective each epoch and ask the pruner.

The xray_optuna sweeper hands each job `trial.number/storage/study_name` and stores the pruner it uses
as a trial system attribute (Optuna's storage keeps no pruner), so a job in any process rebuilds it, from
an allowlist of Optuna pruner classes only: that attribute is data anyone who can write to the study wrote.
On a database-server study the job also records the trial's heartbeat while it trains (with ask/tell Optuna
does not), so if its host dies any worker fails the trial once the heartbeat is older than the grace period.
"""
import logging
import threading
from typing import Any

from hydra_plugins.xray_exp_sweeper.config import pruner_from_spec
from omegaconf import DictConfig

from xray_exp.errors import XrayExpError
from xray_exp.run.monitor import PruneHook
from xray_exp.study import (HEARTBEAT_ATTR, PRUNER_ATTR, open_storage, record_heartbeat, trial_finished, trial_id,
                            trial_system_attrs)

log = logging.getLogger(__name__)


def prune_hook(trial_cfg: DictConfig) -> PruneHook:
    """Open the job's trial in the study's storage; the hook reports (epoch, value) and says whether to stop."""
    import optuna

    if not trial_cfg.storage or not trial_cfg.study_name:
        raise XrayExpError("trial.number is set but trial.storage / trial.study_name are not "
                           "(they are filled in by the xray_optuna sweeper)")
    try:
        study = optuna.load_study(study_name=trial_cfg.study_name, storage=open_storage(trial_cfg.storage))
        attrs = trial_system_attrs(study, trial_cfg.number)
        spec = attrs.get(PRUNER_ATTR)
    except KeyError as e:
        raise XrayExpError(f"study '{trial_cfg.study_name}' in {trial_cfg.storage}: no trial {trial_cfg.number} ({e})") from None
    try:
        study.pruner = pruner_from_spec(spec) if spec else optuna.pruners.NopPruner()
    except XrayExpError as e:
        raise XrayExpError(f"study '{trial_cfg.study_name}' trial {trial_cfg.number}: {e}") from None
    trial = optuna.trial.Trial(study, trial_id(study, trial_cfg.number))
    if attrs.get(HEARTBEAT_ATTR):
        start_heartbeat(study, trial.number, attrs[HEARTBEAT_ATTR])
    log.info(f"reporting to trial {trial.number} of study {study.study_name} (pruner {type(study.pruner).__name__})")

    def report(epoch: int, value: float) -> bool:
        trial.report(value, epoch)
        return trial.should_prune()

    return report


def start_heartbeat(study: Any, number: int, interval: float) -> threading.Event:
    """Record trial `number`'s heartbeat now and every `interval` seconds on a daemon thread, until the
    returned event is set, the trial is finished (told by the sweeper) or the process ends."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                if trial_finished(study, number):
                    return
                record_heartbeat(study, number)
            except Exception as e:  # the database is briefly unreachable: the grace period covers a few misses
                log.warning(f"trial {number}: heartbeat not recorded ({type(e).__name__}: {e})")
            if stop.wait(interval):
                return

    threading.Thread(target=beat, name=f"heartbeat-trial-{number}", daemon=True).start()
    return stop
