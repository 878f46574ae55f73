"""A Hydra callback (conf/train.yaml `hydra.callbacks`) that refuses a used run folder early.

A single run checks its folder before Hydra writes `.hydra/` there: written first, the new command's
config would relabel the earlier run's results, and train() alone could only refuse after that.
"""
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from xray_exp.errors import XrayExpError
from xray_exp.run.run_folder import check_unused


class RunFolderGuard(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_unused(Path(str(config.hydra.run.dir)).resolve())
        except XrayExpError as e:
            # One line and exit 2, as task() does: Hydra prints a stack trace for a callback's exception.
            print(f"xray_exp: error: {e}", file=sys.stderr)
            sys.exit(2)
