"""A stub Hydra app for the xray_optuna sweeper's fast tests (hydra-optuna-sweeper's example/sphere.py, our way).

Its task stands in for `xray_exp.run.train`: it writes a metrics.json through the run-folder contract,
reports a value per "epoch" to its trial through the real job side (xray_exp/run/trial_hook.py) and
returns the objective, in milliseconds. Its config has no `trial:` node: the sweeper must add one. Per
trial number it can be told to end otherwise (lists of trial numbers): `fail_at` raises like a refused
run, `prune_at` stops early with stop_reason pruned, `nan_at` ends with stop_reason nan and returns NaN,
`nan_raise_at` does the same but raises, `slow_at` sleeps `slow_s` seconds first (a trial to interrupt).

    python tests/stub_app/app.py -m hydra.sweep.dir=/tmp/s 'x=interval(0,1)'
"""
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra_plugins.xray_exp_sweeper.xray_optuna_sweeper import XrayOptunaSweeper
from omegaconf import DictConfig

from xray_exp.errors import XrayExpError
from xray_exp.run.run_folder import write_metrics

# As xray_exp/__main__.py does: Hydra's plugin scan misses editable installs.
Plugins.instance().register(XrayOptunaSweeper)


def objective(cfg: DictConfig) -> float:
    """Largest at x=0.3, y=0.6 with opt=sgd: a known best for the tests to find."""
    return 1.0 - (cfg.x - 0.3) ** 2 - (cfg.y - 0.6) ** 2 + cfg.opt.gain


def task(cfg: DictConfig) -> float:
    run_dir = HydraConfig.get().runtime.output_dir
    trial = cfg.get("trial")
    number = trial.number if trial is not None else None
    if number in cfg.slow_at:
        time.sleep(cfg.slow_s)
    record = {"objective": "stub", "value": None, "epochs_completed": 0, "wall_s": 0.0}
    if number in cfg.fail_at:
        write_metrics(run_dir, {**record, "stop_reason": "failed", "error": f"stub failure in trial {number}"})
        raise XrayExpError(f"stub failure in trial {number}")
    if number in cfg.nan_at or number in cfg.nan_raise_at:
        write_metrics(run_dir, {**record, "stop_reason": "nan", "epochs_completed": 1})
        if number in cfg.nan_raise_at:
            raise XrayExpError("the objective became NaN at epoch 1")
        return float("nan")

    report = None
    if number is not None:
        from xray_exp.run.trial_hook import prune_hook

        report = prune_hook(trial)
    value = objective(cfg)
    stop_reason, epochs = "completed", 0
    for epoch in range(1, cfg.epochs + 1):
        epochs = epoch
        at_epoch = value * epoch / cfg.epochs  # a "learning curve" ending at the objective
        if (report is not None and report(epoch, at_epoch)) or number in cfg.prune_at:
            stop_reason, value = "pruned", at_epoch
            break
    write_metrics(run_dir, {**record, "value": value, "stop_reason": stop_reason, "epochs_completed": epochs})
    return value


# Absolute: the tests also run main() in-process, where this module is not __main__.
@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="config")
def main(cfg: DictConfig) -> float:
    return task(cfg)


if __name__ == "__main__":
    main()
