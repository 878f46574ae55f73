"""`python -m xray_exp [overrides]`: compose conf/train.yaml with Hydra and train once (or sweep with -m)."""
import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from hydra_plugins.xray_exp_sweeper.xray_optuna_sweeper import XrayOptunaSweeper
from omegaconf import DictConfig

from xray_exp import CONF_PACKAGE
from xray_exp.errors import XrayExpError
from xray_exp.run.train_args import check_override_keys

log = logging.getLogger("xray_exp")
# Hydra's plugin scan misses editable installs (docs/hydra.md): register our sweeper explicitly.
Plugins.instance().register(XrayOptunaSweeper)


@hydra.main(version_base="1.3", config_path=f"pkg://{CONF_PACKAGE}", config_name="train")
def task(cfg: DictConfig) -> float:
    """Hydra task: the return value is the objective a sweeper maximises."""
    from xray_exp.run.train import train

    hc = HydraConfig.get()
    try:
        return train(cfg, hc.runtime.output_dir).value
    except XrayExpError as e:
        if hc.mode == RunMode.MULTIRUN:
            raise  # the sweeper records the job as failed and goes on
        print(f"xray_exp: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    try:
        check_override_keys([a for a in sys.argv[1:] if "=" in a and not a.startswith("-")])
    except XrayExpError as e:
        print(f"xray_exp: error: {e}", file=sys.stderr)
        sys.exit(2)
    task()


if __name__ == "__main__":
    main()
