"""The per-epoch watcher: objective history, the guide's milestones and gates, pruning, NaN.

Registered as Ultralytics callbacks. Stopping sets `trainer.stop = True` (never raises), so the loop
ends cleanly and best.pt, results.csv and the plots are still written.
"""
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

from xray_exp.errors import XrayExpError

log = logging.getLogger(__name__)

OBJECTIVE_KEYS = {"mAP50": "metrics/mAP50(B)", "mAP50-95": "metrics/mAP50-95(B)"}

# Called with (epoch, value); returns True when the trial should be pruned.
PruneHook = Callable[[int, float], bool]


def objective_value(objective: str, metrics: dict, fitness: float | None) -> float:
    """The run's objective from Ultralytics' metrics dict (`fitness` is Ultralytics' own score)."""
    if objective == "fitness":
        return float("nan") if fitness is None else float(fitness)
    return float(metrics.get(OBJECTIVE_KEYS[objective], float("nan")))


def scaled(name: str, pairs, epochs: int, reference_epochs: int, scale: bool) -> list[tuple[int, float]]:
    """[[epoch, value], ...] -> [(epoch, value)], epochs scaled to this run's length when asked.

    `name` is the config key, for the one-line error when pairs is not a list of [epoch, number] pairs.
    """
    try:
        pairs = [(int(epoch), float(value)) for epoch, value in pairs]
    except (TypeError, ValueError):
        raise XrayExpError(f"{name}={_text(pairs)}: expected a list of [epoch, value] pairs, e.g. "
                           f"{name}=[[100,0.35]]") from None
    return [(max(1, round(e * epochs / reference_epochs)) if scale else e, v) for e, v in pairs]


def _text(value) -> str:
    from omegaconf import OmegaConf

    return str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value).replace(" ", "")


@dataclass
class EpochMonitor:
    objective: str
    epochs: int
    milestones: list[tuple[int, float]] = field(default_factory=list)
    gates: list[tuple[int, float]] = field(default_factory=list)
    prune: PruneHook | None = None
    history: list[float] = field(default_factory=list)  # objective after epoch 1, 2, ...
    best_metrics: dict | None = None  # validation metrics of the best epoch so far (what best.pt holds)
    stop_reason: str | None = None
    final_metrics: dict | None = None  # best.pt's validation (Ultralytics' final evaluation)
    train_seconds: float = 0.0
    train_images: int = 0
    _epoch_start: float = 0.0

    def register(self, model) -> None:
        model.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        model.add_callback("on_train_epoch_end", self.on_train_epoch_end)
        model.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)

    def on_train_epoch_start(self, trainer) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer) -> None:
        # Training throughput excludes validation: it is what batch/workers/cache change.
        self.train_seconds += time.perf_counter() - self._epoch_start
        self.train_images += len(trainer.train_loader.dataset)

    def on_fit_epoch_end(self, trainer) -> None:
        # Ultralytics calls this once more from final_eval (epoch = last + 1, best.pt's metrics, no
        # val/* losses). That call is the final result, not another epoch to report or prune.
        if not any(k.startswith("val/") for k in trainer.metrics):
            self.final_metrics = dict(trainer.metrics)
            return
        epoch = trainer.epoch + 1
        value = objective_value(self.objective, trainer.metrics, trainer.fitness)
        if math.isfinite(value) and value >= max((v for v in self.history if math.isfinite(v)), default=value):
            self.best_metrics = dict(trainer.metrics)  # ties move the best, as Ultralytics rewrites best.pt
        self.history.append(value)
        losses = [float(v) for k, v in trainer.metrics.items() if k.startswith("val/")]
        if not math.isfinite(value) or not all(map(math.isfinite, losses)):
            self._stop(trainer, "nan", f"epoch {epoch}: {self.objective} or loss is not finite; stopping")
            return
        for at, target in self.milestones:
            if at == epoch:
                state = "on track" if value >= target else "behind"
                log.info(f"milestone epoch {epoch}: {self.objective}={value:.4f} vs guide {target:.2f} -> {state}")
        for at, floor in self.gates:
            if at == epoch and value < floor:
                self._stop(trainer, "gate", f"gate epoch {epoch}: {self.objective}={value:.4f} < {floor}; stopping")
                return
        if self.prune is not None and self.prune(epoch, value):
            self._stop(trainer, "pruned", f"epoch {epoch}: {self.objective}={value:.4f}; pruned by the sweeper")

    def _stop(self, trainer, reason: str, message: str) -> None:
        log.warning(message)
        self.stop_reason = reason
        trainer.stop = True
