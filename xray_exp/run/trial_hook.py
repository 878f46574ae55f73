"""A sweep job's side of its Optuna trial: report the objective each epoch and ask the pruner.

The xray_optuna sweeper hands each job `trial.number/storage/study_name` and stores the pruner it uses
as a trial system attribute (Optuna's storage keeps no pruner), so a job in any process rebuilds it.
"""
import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from xray_exp.errors import XrayExpError
from xray_exp.run.monitor import PruneHook
from xray_exp.study import PRUNER_ATTR, trial_id, trial_system_attrs

log = logging.getLogger(__name__)


def prune_hook(trial_cfg: DictConfig) -> PruneHook:
    """Open the job's trial in the study's storage; the hook reports (epoch, value) and says whether to stop."""
    import optuna

    if not trial_cfg.storage or not trial_cfg.study_name:
        raise XrayExpError("trial.number is set but trial.storage / trial.study_name are not "
                           "(they are filled in by the xray_optuna sweeper)")
    try:
        study = optuna.load_study(study_name=trial_cfg.study_name, storage=trial_cfg.storage)
        spec = trial_system_attrs(study, trial_cfg.number).get(PRUNER_ATTR)
    except KeyError as e:
        raise XrayExpError(f"study '{trial_cfg.study_name}' in {trial_cfg.storage}: no trial {trial_cfg.number} ({e})") from None
    study.pruner = instantiate(spec) if spec else optuna.pruners.NopPruner()
    trial = optuna.trial.Trial(study, trial_id(study, trial_cfg.number))
    log.info(f"reporting to trial {trial.number} of study {study.study_name} (pruner {type(study.pruner).__name__})")

    def report(epoch: int, value: float) -> bool:
        trial.report(value, epoch)
        return trial.should_prune()

    return report
