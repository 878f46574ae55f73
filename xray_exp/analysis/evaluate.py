"""Evaluate weights on a split: Ultralytics' own validation plus the guide's "accuracy" -> eval.json.

mAP50, mAP50-95, precision, recall, per-class AP50 and the confusion matrix come from Ultralytics'
validator unchanged (its defaults: conf 0.001, IoU 0.7), so they equal `YOLO(w).val(...)`.

The guide's evaluation script also reported an "accuracy", measured per image: the class of the
highest-confidence detection at confidence >= conf (0.10 in the guide) is compared with the classes
labelled in that image; it is correct if it is one of them, and an image with no such detection is
wrong. `guide_accuracy` computes it (and the detection rate and the per-class accuracy) from plain
per-image data. Decisions the guide left open, made here:
- background images (no labels) have no class to get right: they are left out of accuracy, detection
  rate and per-class accuracy, and reported on their own (how many got a detection: false alarms);
- per-class accuracy of class c uses the same rule over the images labelled with c; an image with
  several classes counts in each of their groups.
"""
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from xray_exp.files import write_text
from xray_exp.data.yolo import load_data_yaml, read_labels
from xray_exp.errors import XrayExpError
from xray_exp.analysis.predict import detect, load_model
from xray_exp.run.train_args import check_device

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"
GUIDE_CONF = 0.10  # the guide's evaluation script's confidence threshold


@dataclass(frozen=True)
class Accuracy:
    images: int                   # labelled images (the denominator)
    correct: int
    detected: int                 # labelled images with >= 1 detection at conf
    background_images: int
    background_detected: int      # background images with a detection: false alarms
    per_class: dict[str, dict[str, Any]]  # name -> {"images", "correct", "accuracy"}

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.images if self.images else None

    @property
    def detection_rate(self) -> float | None:
        return self.detected / self.images if self.images else None

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "detection_rate": self.detection_rate, "images": self.images,
                "correct": self.correct, "detected": self.detected,
                "background_images": self.background_images, "background_detected": self.background_detected,
                "per_class": self.per_class}


def guide_accuracy(predictions: Sequence[Sequence[tuple[int, float]]], truths: Sequence[Iterable[int]],
                   names: Sequence[str], conf: float = GUIDE_CONF) -> Accuracy:
    """The guide's per-image accuracy from (class, score) detections and the labelled classes per image.

    predictions[i] and truths[i] belong to image i. See the module docstring for the rules.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction lists for {len(truths)} images")
    correct = detected = background = background_detected = 0
    per_class = {name: {"images": 0, "correct": 0} for name in names}
    images = 0
    for dets, truth in zip(predictions, truths):
        truth = set(truth)
        above = [(score, cls) for cls, score in dets if score >= conf]
        top = max(above)[1] if above else None  # ties in score: the higher class id, deterministically
        if not truth:
            background += 1
            background_detected += top is not None
            continue
        images += 1
        detected += top is not None
        hit = top in truth
        correct += hit
        for cls in truth:
            per_class[names[cls]]["images"] += 1
            per_class[names[cls]]["correct"] += hit
    for counts in per_class.values():
        counts["accuracy"] = counts["correct"] / counts["images"] if counts["images"] else None
    return Accuracy(images, correct, detected, background, background_detected, per_class)


def evaluate(weights: str | Path, data: str | Path, split: str = "val", conf: float = GUIDE_CONF,
             out: str | Path = "outputs/eval", device: str | None = None, imgsz: int | None = None) -> dict[str, Any]:
    """Validate `weights` on `split` of `data`, compute the guide's accuracy, write out/eval.json; return it."""
    if not 0 <= conf <= 1:
        raise XrayExpError(f"--conf {conf}: a confidence threshold is between 0 and 1")
    dataset = load_data_yaml(data)  # one-line errors for a missing file, no names, missing split folders
    if split not in dataset.sources:
        raise XrayExpError(f"{data}: no '{split}' split (it has {', '.join(dataset.sources)})")
    samples = dataset.samples(split)
    if not samples:
        raise XrayExpError(f"{data}: the '{split}' split has no images")
    check_device(device)
    model = load_model(weights)
    model_names = [model.names[i] for i in sorted(model.names)]
    if model_names != dataset.names:
        raise XrayExpError(f"{weights} was trained on classes {model_names}, {data} has {dataset.names}: "
                           f"evaluate on a dataset with the same class list")
    # Labels are read first: a bad label row fails here in one line (Ultralytics would silently drop the image).
    truths = [{label.cls for label in read_labels(s.label, dataset.nc)} for s in samples]
    out = Path(out).resolve()
    started = time.perf_counter()

    kwargs = {"imgsz": imgsz} if imgsz else {}  # default: the checkpoint's training size, as Ultralytics does
    # save_dir keeps Ultralytics' plots (confusion matrix, PR curves) in out/, not in ./runs/detect/val.
    metrics = model.val(data=str(Path(data).resolve()), split=split, device=device, plots=True, save_dir=str(out),
                        exist_ok=True, verbose=False, **kwargs)
    box = metrics.box

    # Predictions at half the threshold: guide_accuracy applies ">= conf" exactly (Ultralytics keeps
    # scores strictly above its threshold), and NMS never lets a weaker box remove the top one.
    predictions = [[(cls, score) for (cls, *_), score in zip(det.boxes, det.scores)]
                   for det in detect(model, [s.image for s in samples], conf / 2, device, imgsz)]
    acc = guide_accuracy(predictions, truths, dataset.names, conf)

    record = {
        "weights": str(Path(weights).resolve()), "data": str(Path(data).resolve()), "split": split, "conf": conf,
        "metrics": {"mAP50": float(box.map50), "mAP50-95": float(box.map), "precision": float(box.mp),
                    "recall": float(box.mr)},
        "per_class_ap50": {dataset.names[int(c)]: float(ap) for c, ap in zip(box.ap_class_index, box.ap50)},
        **acc.as_dict(),
        "confusion_matrix": str(out / "confusion_matrix.png"),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    write_text(out / EVAL_FILE, json.dumps(record, indent=2) + "\n")
    log.info(f"eval: mAP50={record['metrics']['mAP50']:.4f} accuracy={record['accuracy']} -> {out / EVAL_FILE}")
    return record
