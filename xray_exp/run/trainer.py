"""A DetectionTrainer whose idea of "best" is the run's objective.

Ultralytics keeps best.pt and counts patience by its fitness (mAP50-95 in 8.4). A user who optimises
mAP50 wants the mAP50-best weights, and the sweeper is told that checkpoint's value, so the objective
replaces fitness in the one place Ultralytics computes it.
"""
from ultralytics.models.yolo.detect import DetectionTrainer

from xray_exp.run.monitor import OBJECTIVE_KEYS


def trainer_for(objective: str) -> type[DetectionTrainer]:
    """DetectionTrainer for objective `fitness`, else a subclass that ranks epochs by the objective."""
    if objective == "fitness":
        return DetectionTrainer
    key = OBJECTIVE_KEYS[objective]

    class ObjectiveTrainer(DetectionTrainer):
        def validate(self):
            best_before = self.best_fitness
            metrics, fitness = super().validate()
            if metrics is None:
                return metrics, fitness
            fitness = float(metrics[key])
            # Same rule as Ultralytics (strictly better moves the best; save_model() then writes best.pt
            # whenever this epoch's fitness equals the best).
            self.best_fitness = fitness if best_before is None or best_before < fitness else best_before
            return metrics, fitness

    ObjectiveTrainer.__name__ = ObjectiveTrainer.__qualname__ = f"{objective.replace('-', '_')}Trainer"
    return ObjectiveTrainer
