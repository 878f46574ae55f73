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
    # With a database-server storage (not SQLite), each trial's sweep process and training job record a
    # heartbeat every heartbeat_interval seconds, and any worker, on any host, fails a RUNNING trial whose
    # heartbeat is older than grace_period (Optuna's RDB heartbeat). null turns it off. SQLite is one host:
    # there a trial whose sweep process is gone is failed instead.
    heartbeat_interval: Optional[int] = 60
    grace_period: int = 600  # seconds: long enough to outlast a database restart or a busy validation


PRUNERS = {"none": NopPrunerConf, "median": MedianPrunerConf, "successive_halving": SuccessiveHalvingPrunerConf,
           "hyperband": HyperbandPrunerConf, "threshold": ThresholdPrunerConf}
# The only classes a pruner spec may name. Jobs rebuild the pruner from a study attribute, and whoever can
# write to a shared study (an RDB server) writes that attribute: it must never name arbitrary code.
ALLOWED_PRUNERS = tuple(node._target_ for node in PRUNERS.values())
PLAIN_VALUES = (bool, int, float, str, type(None))


def pruner_from_spec(spec: Any) -> Any:
    """An Optuna pruner from its spec ({_target_: <allowed class>, keyword: plain value, ...}), built
    without Hydra's instantiate: no other class, no nested `_target_`, no `_args_`/`_partial_`."""
    import optuna

    from xray_exp.errors import XrayExpError

    target = spec.get("_target_") if isinstance(spec, dict) else None
    if target not in ALLOWED_PRUNERS:
        raise XrayExpError(f"refusing pruner spec naming _target_ {target!r}: only {', '.join(ALLOWED_PRUNERS)} "
                           "may be built" if target else f"refusing pruner spec {spec!r}: it names no _target_")
    kwargs = {k: v for k, v in spec.items() if k != "_target_"}
    bad = [k for k, v in kwargs.items() if not isinstance(k, str) or k.startswith("_") or not isinstance(v, PLAIN_VALUES)]
    if bad:
        raise XrayExpError(f"refusing pruner spec for {target}: {', '.join(map(str, bad))} must be plain keyword "
                           "values (numbers, strings, booleans, null)")
    try:
        return getattr(optuna.pruners, target.rsplit(".", 1)[1])(**kwargs)
    except (TypeError, ValueError) as e:
        raise XrayExpError(f"pruner {target}: {e}") from None


cs = ConfigStore.instance()
cs.store(group="hydra/sweeper", name="xray_optuna", node=XrayOptunaSweeperConf, provider="xray_exp")
for name, node in PRUNERS.items():
    cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider="xray_exp")
