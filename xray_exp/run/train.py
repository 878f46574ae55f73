"""train(cfg): one composed config -> one Ultralytics training in the run folder -> metrics.json.

The single training path of the project: the CLI, multiruns and the sweeper all come through here.
"""
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from xray_exp.run import guards, train_args
from xray_exp.run.data_yaml import resolve_data_yaml
from xray_exp.errors import XrayExpError
from xray_exp.run.weights import resolve_weights
from xray_exp.run.monitor import EpochMonitor, objective_value, scaled
from xray_exp.run.run_folder import write_metrics

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    value: float            # the objective of best.pt (what a sweeper maximises)
    record: dict[str, Any]  # what metrics.json holds
    run_dir: Path


def train(cfg: DictConfig, run_dir: str | Path) -> RunResult:
    """Validate, train and summarise one run into `run_dir` (Ultralytics' save_dir)."""
    run_dir = Path(run_dir).resolve()
    try:
        kwargs = train_args.train_kwargs(cfg)
        data_yaml = resolve_data_yaml(cfg.dataset)
        weights = resolve_weights(cfg.model)
        findings = guards.find(kwargs, data_yaml)
        for line in findings:
            log.warning(f"guard: {line}")
        guards.enforce(findings, cfg.guards.strict)
    except XrayExpError as e:
        # Refused before training: the folder still says why, so compare lists it as failed.
        write_metrics(run_dir, {"objective": cfg.objective, "value": None, "stop_reason": "failed",
                                "error": str(e), "epochs_completed": 0})
        raise

    # Deferred: torch and Ultralytics take seconds to import, and a refused run should fail fast.
    from ultralytics import YOLO

    from xray_exp.offline import pin_ultralytics_dirs
    from xray_exp.run.trainer import trainer_for

    pin_ultralytics_dirs()

    monitor = EpochMonitor(
        objective=cfg.objective, epochs=cfg.epochs, prune=_prune_hook(cfg),
        milestones=scaled(cfg.monitor.milestones, cfg.epochs, cfg.monitor.reference_epochs, cfg.monitor.scale_to_epochs),
        gates=scaled(cfg.monitor.gates, cfg.epochs, cfg.monitor.reference_epochs, cfg.monitor.scale_to_epochs))
    model = YOLO(cfg.model.arch)
    monitor.register(model)
    resolved: dict[str, Any] = {}
    model.add_callback("on_train_start", lambda trainer: resolved.update(_resolved_optimizer(trainer)))

    base = {"objective": cfg.objective, "ignored": findings, "data": str(data_yaml),
            "weights": str(weights) if weights else None, "versions": _versions()}
    started = time.perf_counter()
    try:
        model.train(trainer=trainer_for(cfg.objective), data=str(data_yaml), save_dir=str(run_dir),
                    exist_ok=True, pretrained=str(weights) if weights else False, **kwargs)
    except Exception as e:
        write_metrics(run_dir, {**base, "value": None, "stop_reason": "failed", "error": f"{type(e).__name__}: {e}",
                                "epochs_completed": len(monitor.history), "resolved": resolved,
                                "wall_s": round(time.perf_counter() - started, 2)})
        raise
    wall = time.perf_counter() - started

    record = {**base, **_summary(cfg, model.trainer, monitor), "wall_s": round(wall, 2), "resolved": resolved}
    write_metrics(run_dir, record)
    log.info(f"{cfg.objective}={record['value']!r} (best epoch {record['best_epoch']}, {record['epochs_completed']} "
             f"epochs, {record['stop_reason']}) -> {run_dir}")
    return RunResult(value=record["value"], record=record, run_dir=run_dir)


def _summary(cfg: DictConfig, trainer, monitor: EpochMonitor) -> dict[str, Any]:
    """metrics.json's results: best.pt's final validation, the epoch history and why training stopped."""
    final = monitor.final_metrics or dict(trainer.metrics)
    validated = trainer.validator.metrics  # after final_eval: best.pt on the val split
    value = objective_value(cfg.objective, final, validated.fitness)
    history = monitor.history
    return {
        "value": value,
        "metrics": {"mAP50": final.get("metrics/mAP50(B)"), "mAP50-95": final.get("metrics/mAP50-95(B)"),
                    "precision": final.get("metrics/precision(B)"), "recall": final.get("metrics/recall(B)")},
        "per_class_ap50": {validated.names[int(c)]: float(ap)
                           for c, ap in zip(validated.box.ap_class_index, validated.box.ap50)},
        # Ultralytics rewrites best.pt on ties, so the best epoch is the last of equal maxima.
        "best_epoch": max(range(len(history)), key=lambda i: (history[i], i)) + 1 if history else None,
        "epochs_completed": len(history), "epochs": cfg.epochs,
        "stop_reason": _stop_reason(cfg, trainer, monitor) if math.isfinite(value) else "nan",
        "history": history,
        "train_images_per_s": round(monitor.train_images / monitor.train_seconds, 2) if monitor.train_seconds else None,
    }


def _stop_reason(cfg: DictConfig, trainer, monitor: EpochMonitor) -> str:
    """Why training ended: our monitor's reason, else all epochs, else Ultralytics' patience or its `time` limit."""
    if monitor.stop_reason:
        return monitor.stop_reason
    if len(monitor.history) >= cfg.epochs:
        return "completed"
    stopper = trainer.stopper  # Ultralytics' EarlyStopping: stops once patience epochs passed the best
    if len(monitor.history) - stopper.best_epoch >= stopper.patience:
        return "patience"
    # `time` (hours) ends training on the clock, re-estimating the epoch count after each epoch.
    return "time" if trainer.args.time else "patience"


def _prune_hook(cfg: DictConfig):
    """The sweeper's trial, when this job is one (cfg.trial is filled in by our Optuna sweeper)."""
    if cfg.trial.number is None:
        return None
    from xray_exp.run.trial_hook import prune_hook

    return prune_hook(cfg.trial)


def _resolved_optimizer(trainer) -> dict[str, Any]:
    """What Ultralytics actually uses: under optimizer=auto it swaps the optimizer and lr0."""
    group = trainer.optimizer.param_groups[0]
    momentum = group["betas"][0] if "betas" in group else group.get("momentum")
    return {"optimizer": type(trainer.optimizer).__name__, "lr0": group.get("initial_lr", group["lr"]),
            "momentum": momentum, "warmup_bias_lr": trainer.args.warmup_bias_lr, "batch": trainer.batch_size}


def _versions() -> dict[str, str]:
    import torch
    import ultralytics

    return {"ultralytics": ultralytics.__version__, "torch": torch.__version__}
