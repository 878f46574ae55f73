"""best.pt follows the run's objective: the trainer ranks epochs by it instead of Ultralytics' fitness.

The epoch metrics are fed in through the trainer's validator (a real training cannot be steered into
epochs whose mAP50 and mAP50-95 disagree); the ranking code under test is the trainer's own.
"""
import pytest
import torch

import xray_exp  # noqa: F401  (offline environment before Ultralytics)
from xray_exp.run.trainer import trainer_for

# Epoch 1 is best by mAP50, epoch 2 by mAP50-95 (Ultralytics' fitness in 8.4).
EPOCHS = [{"metrics/mAP50(B)": 0.5, "metrics/mAP50-95(B)": 0.1, "fitness": 0.1},
          {"metrics/mAP50(B)": 0.3, "metrics/mAP50-95(B)": 0.2, "fitness": 0.2}]


def ranked(objective: str) -> list[tuple[float, float]]:
    """(this epoch's fitness, best so far) after each epoch, as save_model() sees them."""
    cls = trainer_for(objective)
    trainer = cls.__new__(cls)  # only the state validate() touches
    trainer.best_fitness, trainer.ema, trainer.world_size = None, None, 1
    trainer.loss = torch.zeros(1)  # Ultralytics evaluates its loss fallback even when fitness is given
    feed = iter(EPOCHS)
    trainer.validator = lambda _trainer: dict(next(feed))
    seen = []
    for _ in EPOCHS:
        _, fitness = trainer.validate()
        seen.append((fitness, trainer.best_fitness))
    return seen


def test_mAP50_objective_keeps_the_mAP50_best_epoch():
    # save_model() writes best.pt when fitness == best_fitness: epoch 1 only.
    assert ranked("mAP50") == [(0.5, 0.5), (0.3, 0.5)]


def test_mAP50_95_objective_moves_best_to_epoch_2():
    assert ranked("mAP50-95") == [(0.1, 0.1), (0.2, 0.2)]


def test_fitness_objective_is_ultralytics_own_ranking():
    assert ranked("fitness") == [(pytest.approx(0.1), pytest.approx(0.1)), (pytest.approx(0.2), pytest.approx(0.2))]
