"""The Hydra plugin class. Optuna is imported only when a sweep starts (single runs stay fast)."""
from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.xray_exp_sweeper import config  # noqa: F401  (stores the config schema)


class XrayOptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, direction: Any, storage: Optional[str], study_name: Optional[str],
                 n_trials: int, n_jobs: int, max_failure_rate: float, search_space: Optional[DictConfig],
                 custom_search_space: Optional[str], params: Optional[DictConfig], pruner: Any,
                 enqueue_config_values: bool) -> None:
        from hydra_plugins.xray_exp_sweeper._impl import XrayOptunaSweeperImpl

        self.sweeper = XrayOptunaSweeperImpl(
            sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate, search_space,
            custom_search_space, params, pruner=pruner, enqueue_config_values=enqueue_config_values)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        return self.sweeper.sweep(arguments)
