"""train(cfg): one composed config -> one Ultralytics training in the run folder -> metrics.json.

The single training path of the project: the CLI, multiruns and the sweeper all come through here.
"""
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from xray_exp.run import guards, train_args
from xray_exp.run.data_yaml import resolve_data_yaml
from xray_exp.errors import Terminated, XrayExpError
from xray_exp.run.weights import check_checkpoint, resolve_weights
from xray_exp.run.monitor import EpochMonitor, objective_value, scaled
from xray_exp.run.run_folder import check_unused, write_metrics

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    value: float | None     # the objective of best.pt (what a sweeper maximises); None when training diverged
    record: dict[str, Any]  # what metrics.json holds
    run_dir: Path


@dataclass
class _Progress:
    """What a run that ends early (an error, Ctrl-C, SIGTERM) can still say in its metrics.json."""
    objective: Any
    base: dict[str, Any] = field(default_factory=dict)
    monitor: EpochMonitor | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    started: float | None = None  # perf_counter when Ultralytics' training began

    def ended(self, stop_reason: str, error: str) -> dict[str, Any]:
        history = self.monitor.history if self.monitor else []
        finite = [(v, i) for i, v in enumerate(history) if math.isfinite(v)]
        best = max(finite) if finite else None  # ties: the later epoch, as Ultralytics rewrites best.pt
        return {"objective": self.objective, **self.base,
                # an interrupted run reports its best so far (best.pt); a failed one is not scored
                "value": best[0] if best and stop_reason == "interrupted" else None,
                "stop_reason": stop_reason, "error": error,
                "metrics": _metrics(self.monitor.best_metrics) if self.monitor and self.monitor.best_metrics else None,
                "best_epoch": best[1] + 1 if best else None, "epochs_completed": len(history),
                "history": history, "resolved": self.resolved,
                "wall_s": round(time.perf_counter() - self.started, 2) if self.started else None}


def train(cfg: DictConfig, run_dir: str | Path) -> RunResult:
    """Validate, train and summarise one run into `run_dir` (Ultralytics' save_dir).

    A folder holding another run's results is refused untouched. Otherwise the run always ends with a
    metrics.json: its results, or stop_reason failed (with the error) or interrupted (Ctrl-C, SIGTERM;
    the epochs done and the best so far, best.pt and last.pt kept), and the exception goes on up.
    """
    run_dir = Path(run_dir).resolve()
    check_unused(run_dir)
    progress = _Progress(objective=cfg.get("objective"))
    try:
        return _train(cfg, run_dir, progress)
    except KeyboardInterrupt as e:
        signal_name = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
        record = progress.ended("interrupted", f"interrupted by {signal_name}")
        write_metrics(run_dir, record)
        log.warning(f"interrupted by {signal_name} after {record['epochs_completed']} epochs "
                    f"(best {cfg.get('objective')}={record['value']!r}) -> {run_dir}")
        raise
    except Exception as e:  # compare lists it as failed, with why (our own errors need no type name)
        reason = str(e) if isinstance(e, XrayExpError) else f"{type(e).__name__}: {e}"
        write_metrics(run_dir, progress.ended("failed", reason))
        raise


def _train(cfg: DictConfig, run_dir: Path, progress: _Progress) -> RunResult:
    # Every check before Ultralytics builds anything, the costly ones (device, loading the weights) last.
    kwargs = train_args.train_kwargs(cfg)
    data_yaml = resolve_data_yaml(cfg.dataset)
    weights = resolve_weights(cfg.model)
    mon = cfg.monitor
    milestones = scaled("monitor.milestones", mon.milestones, cfg.epochs, mon.reference_epochs, mon.scale_to_epochs)
    gates = scaled("monitor.gates", mon.gates, cfg.epochs, mon.reference_epochs, mon.scale_to_epochs)
    findings = guards.find(kwargs, data_yaml)
    for line in findings:
        log.warning(f"guard: {line}")
    guards.enforce(findings, cfg.guards.strict)
    train_args.check_device(kwargs["device"])
    if weights:
        check_checkpoint(weights)

    # Deferred: importing Ultralytics' model classes takes seconds a refused run does not need.
    from ultralytics import YOLO

    from xray_exp.offline import pin_ultralytics_dirs
    from xray_exp.run.trainer import trainer_for

    pin_ultralytics_dirs()
    monitor = progress.monitor = EpochMonitor(objective=cfg.objective, epochs=cfg.epochs, prune=_prune_hook(cfg),
                                              milestones=milestones, gates=gates)
    model = YOLO(cfg.model.arch)
    monitor.register(model)
    model.add_callback("on_train_start", lambda trainer: progress.resolved.update(_resolved(trainer)))
    progress.base = {"ignored": findings, "data": str(data_yaml), "weights": str(weights) if weights else None,
                     "versions": _versions()}
    progress.started = time.perf_counter()
    model.train(trainer=trainer_for(cfg.objective), data=str(data_yaml), save_dir=str(run_dir),
                exist_ok=True, pretrained=str(weights) if weights else False, **kwargs)
    wall = time.perf_counter() - progress.started

    record = {"objective": cfg.objective, **progress.base, **_summary(cfg, model.trainer, monitor),
              "wall_s": round(wall, 2), "resolved": progress.resolved}
    write_metrics(run_dir, record)
    log.info(f"{cfg.objective}={record['value']!r} (best epoch {record['best_epoch']}, {record['epochs_completed']} "
             f"epochs, {record['stop_reason']}) -> {run_dir}")
    return RunResult(value=record["value"], record=record, run_dir=run_dir)


def _metrics(validation: dict) -> dict[str, Any]:
    return {"mAP50": validation.get("metrics/mAP50(B)"), "mAP50-95": validation.get("metrics/mAP50-95(B)"),
            "precision": validation.get("metrics/precision(B)"), "recall": validation.get("metrics/recall(B)")}


def _summary(cfg: DictConfig, trainer, monitor: EpochMonitor) -> dict[str, Any]:
    """metrics.json's results: best.pt's final validation, the epoch history and why training stopped."""
    final = monitor.final_metrics or dict(trainer.metrics)
    validated = trainer.validator.metrics  # after final_eval: best.pt on the val split
    value = objective_value(cfg.objective, final, validated.fitness)
    stop_reason = _stop_reason(cfg, trainer, monitor) if math.isfinite(value) else "nan"
    history = monitor.history
    return {
        # A diverged run is not scored: best.pt's validation after a NaN stop means nothing (often 0.0).
        "value": None if stop_reason == "nan" else value,
        "metrics": _metrics(final),
        "per_class_ap50": {validated.names[int(c)]: float(ap)
                           for c, ap in zip(validated.box.ap_class_index, validated.box.ap50)},
        # Ultralytics rewrites best.pt on ties, so the best epoch is the last of equal maxima.
        "best_epoch": max(range(len(history)), key=lambda i: (history[i], i)) + 1 if history else None,
        "epochs_completed": len(history), "epochs": cfg.epochs,
        "stop_reason": stop_reason,
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


def _resolved(trainer) -> dict[str, Any]:
    """What Ultralytics actually uses: under optimizer=auto it swaps the optimizer and lr0, AutoBatch picks
    the batch, and imgsz is rounded up to a multiple of the stride."""
    group = trainer.optimizer.param_groups[0]
    momentum = group["betas"][0] if "betas" in group else group.get("momentum")
    return {"optimizer": type(trainer.optimizer).__name__, "lr0": group.get("initial_lr", group["lr"]),
            "momentum": momentum, "warmup_bias_lr": trainer.args.warmup_bias_lr, "batch": trainer.batch_size,
            "imgsz": trainer.args.imgsz}


def _versions() -> dict[str, str]:
    import torch
    import ultralytics

    return {"ultralytics": ultralytics.__version__, "torch": torch.__version__}
