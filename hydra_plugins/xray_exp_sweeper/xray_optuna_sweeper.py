"""The Hydra plugin class. Optuna is imported only when a sweep starts (single runs stay fast)."""
import os
import signal
import sys
from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.xray_exp_sweeper import config  # noqa: F401  (stores the config schema)
from xray_exp.errors import Terminated, XrayExpError


class XrayOptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, direction: Any, storage: Optional[str], study_name: Optional[str],
                 n_trials: int, n_jobs: int, max_failure_rate: float, search_space: Optional[DictConfig],
                 custom_search_space: Optional[str], params: Optional[DictConfig], pruner: Any,
                 enqueue_config_values: bool, heartbeat_interval: Optional[int], grace_period: int) -> None:
        from hydra_plugins.xray_exp_sweeper._impl import XrayOptunaSweeperImpl

        self.sweeper = XrayOptunaSweeperImpl(
            sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate, search_space,
            custom_search_space, params, pruner=pruner, enqueue_config_values=enqueue_config_values,
            heartbeat_interval=heartbeat_interval, grace_period=grace_period)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        """The sweep, whose errors end it with one line on stderr (Hydra would print a traceback), unless
        HYDRA_FULL_ERROR=1 asks for the traceback."""
        try:
            return self.sweeper.sweep(arguments)
        except XrayExpError as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"xray_exp: error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            # Only SweepInterrupted says where and which signal: Ctrl-C between trials is plain KeyboardInterrupt.
            signal_name = getattr(e, "signal_name", "SIGTERM" if isinstance(e, Terminated) else "SIGINT")
            trial = f" in {e}: that trial is FAIL, the tables are rewritten" if str(e) else ""
            print(f"xray_exp: sweep interrupted by {signal_name}{trial}; run the same command to resume", file=sys.stderr)
            sys.exit(128 + getattr(signal, signal_name))  # the shell's convention for "ended by this signal"
