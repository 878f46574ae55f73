"""Settings that look like they do something but cannot act: found before any training starts.

Each finding is one line; a run lists them in metrics.json ("ignored") and warns, or with
guards.strict=true refuses to start. The reasons are Ultralytics 8.4 behaviours (docs/ultralytics.md).
"""
from pathlib import Path
from typing import Any

from xray_exp.data.yolo import YoloDataset, label_lines, load_data_yaml
from xray_exp.errors import XrayExpError

LABEL_SAMPLE = 200  # label files read to decide whether a dataset has polygons: cheap, and enough


def auto_optimizer_lr(nc: int) -> float:
    """The lr Ultralytics picks under optimizer=auto for short runs (its `lr_fit` formula)."""
    return round(0.002 * 5 / (4 + nc), 6)


def find(kwargs: dict[str, Any], data_yaml: Path) -> list[str]:
    """Return one line per setting that will not act as written."""
    findings = []
    dataset = load_data_yaml(data_yaml)
    if kwargs.get("optimizer") == "auto":
        findings.append(
            f"lr.lr0={kwargs['lr0']}: ignored under optimizer=auto, which picks its own optimizer and lr "
            f"(AdamW lr={auto_optimizer_lr(dataset.nc)} for {dataset.nc} classes on short runs, MuSGD 0.01 on long "
            "ones) and sets warmup_bias_lr=0; use optimizer=adamw or optimizer=sgd to measure lr")
    if kwargs.get("dropout", 0.0):
        findings.append(f"dropout={kwargs['dropout']}: no effect on detection (only the classification head reads it)")
    if kwargs.get("copy_paste", 0.0) and not _has_polygons(dataset):
        findings.append(f"augmentation.copy_paste={kwargs['copy_paste']}: needs polygon labels; "
                        "this dataset has boxes only, so it does nothing")
    close = kwargs.get("close_mosaic", 10)
    if close and kwargs["epochs"] <= close:
        for key in ("mosaic", "mixup", "cutmix"):
            if kwargs.get(key, 0.0):
                findings.append(
                    f"augmentation.{key}={kwargs[key]}: never used, close_mosaic={close} turns it off for the "
                    f"last {close} epochs and this run has epochs={kwargs['epochs']}; lower augmentation.close_mosaic")
    for key, what in (("hsv_h", "hue jitter"), ("bgr", "channel swap")):
        if kwargs.get(key, 0.0):
            findings.append(f"augmentation.{key}={kwargs[key]}: {what} recolours X-ray false colour, where colour "
                            "encodes material (organic orange, metal blue); set it to 0")
    return findings


def enforce(findings: list[str], strict: bool) -> None:
    if strict and findings:
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        raise XrayExpError(f"guards.strict=true: {findings[0]}{more}")


def _has_polygons(dataset: YoloDataset) -> bool:
    """True when sampled train labels have polygon lines (more than 5 fields)."""
    for sample in dataset.samples("train")[:LABEL_SAMPLE]:
        if any(len(line.split()) > 5 for _, line in label_lines(sample.label)):
            return True
    return False
