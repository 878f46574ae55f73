"""`python -m xray_exp [overrides]`: compose conf/train.yaml with Hydra and train once (or sweep with -m)."""
import logging
import signal
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from hydra_plugins.xray_exp_sweeper.xray_optuna_sweeper import XrayOptunaSweeper
from omegaconf import DictConfig

from xray_exp import CONF_PACKAGE
from xray_exp.errors import Terminated, XrayExpError
from xray_exp.run.train_args import check_override_keys

EXIT_FAILED = 1   # the run trained and failed (diverged: stop_reason=nan)
EXIT_REFUSED = 2  # bad input, refused before training

log = logging.getLogger("xray_exp")
# Hydra's plugin scan misses editable installs (docs/hydra.md): register our sweeper explicitly.
Plugins.instance().register(XrayOptunaSweeper)


@hydra.main(version_base="1.3", config_path=f"pkg://{CONF_PACKAGE}", config_name="train")
def task(cfg: DictConfig) -> float:
    """Hydra task: the return value is the objective a sweeper maximises."""
    from xray_exp.run.train import train

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        result = train(cfg, HydraConfig.get().runtime.output_dir)
    except XrayExpError as e:
        _fail(e, multirun, EXIT_REFUSED)
    if result.record["stop_reason"] == "nan":
        _fail(XrayExpError(f"training diverged: {cfg.objective} or a loss is not finite at epoch "
                           f"{result.record['epochs_completed']}; {result.run_dir} keeps the run (metrics.json: "
                           "stop_reason=nan)"), multirun, EXIT_FAILED)
    return result.value


def _fail(error: XrayExpError, multirun: bool, code: int) -> None:
    if multirun:
        raise error  # the sweeper records the job as failed, with the reason, and goes on
    print(f"xray_exp: error: {error}", file=sys.stderr)
    sys.exit(code)


def _terminate(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


def main() -> None:
    # SIGTERM (kill, a scheduler, a container stop) ends a run as Ctrl-C does, with its metrics.json.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        check_override_keys([a for a in sys.argv[1:] if "=" in a and not a.startswith("-")])
    except XrayExpError as e:
        print(f"xray_exp: error: {e}", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
    try:
        task()
    except KeyboardInterrupt as e:
        sig = signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT
        print(f"xray_exp: interrupted by {sig.name}", file=sys.stderr)
        sys.exit(128 + sig)  # the shell's convention for "ended by this signal"


if __name__ == "__main__":
    main()
