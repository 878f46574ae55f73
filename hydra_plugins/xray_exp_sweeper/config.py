"""Config schema of the xray_optuna sweeper: hydra-optuna-sweeper's own schema plus a pruner.

Everything users know from `hydra/sweeper=optuna` (sampler, direction, storage, study_name, n_trials,
params, max_failure_rate) keeps its name and meaning, except that `n_trials` is the total for the study
(a re-run resumes) and `storage: null` means SQLite in the sweep folder.
"""
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import MISSING


@dataclass
class PrunerConf:
    _target_: str = MISSING


@dataclass
class NopPrunerConf(PrunerConf):
    """Never prunes: every trial trains its full epochs."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConf(PrunerConf):
    """Prunes a trial whose objective at an epoch is below the median of finished trials at that epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    # Not Optuna's defaults (5, 0): for the guide's 100-200 epoch runs. Short runs lower n_warmup_steps.
    n_startup_trials: int = 3  # finished trials needed before anything is pruned
    n_warmup_steps: int = 10   # epochs of every trial that are never judged (Path A's LR warmup is 5)
    interval_steps: int = 1


@dataclass
class SuccessiveHalvingPrunerConf(PrunerConf):
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"  # epochs before the first rung ("auto": from the first finished trial)
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0


@dataclass
class HyperbandPrunerConf(PrunerConf):
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"  # the run's epochs, learnt from the first finished trial
    reduction_factor: int = 3


@dataclass
class ThresholdPrunerConf(PrunerConf):
    """Prunes as soon as the objective is outside [lower, upper] (after n_warmup_steps epochs)."""

    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: int = 0
    interval_steps: int = 1


@dataclass
class XrayOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.xray_exp_sweeper.xray_optuna_sweeper.XrayOptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])
    pruner: Any = MISSING
    # Trials run one at a time per process; run several processes on one study with
    # `xray-exp sweep --workers N` instead (an in-process batch would be a barrier for the pruner).
    n_jobs: int = 1
    # Enqueue the composed config's own values of the searched keys as the study's first trial, so the
    # configuration the search starts from (Path A under search=path_a) is always measured.
    enqueue_config_values: bool = True


cs = ConfigStore.instance()
cs.store(group="hydra/sweeper", name="xray_optuna", node=XrayOptunaSweeperConf, provider="xray_exp")
for name, node in [("none", NopPrunerConf), ("median", MedianPrunerConf),
                   ("successive_halving", SuccessiveHalvingPrunerConf), ("hyperband", HyperbandPrunerConf),
                   ("threshold", ThresholdPrunerConf)]:
    cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider="xray_exp")
