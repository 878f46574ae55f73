"""The run-folder contract: metrics.json (written atomically) and how it is read back."""
import json
import math
from pathlib import Path
from typing import Any

from xray_exp.files import write_text
from xray_exp.errors import XrayExpError

METRICS_FILE = "metrics.json"  # the run's summary, written last (atomically) by run/train.py
RESULTS_FILE = "results.csv"   # Ultralytics' per-epoch table, grown while the run trains
STOP_REASONS = ("completed", "patience", "time", "pruned", "gate", "nan", "failed")


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a missing value reads back as null
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def write_metrics(run_dir: str | Path, record: dict[str, Any]) -> Path:
    if record.get("stop_reason") not in STOP_REASONS:
        raise ValueError(f"stop_reason must be one of {STOP_REASONS}, got {record.get('stop_reason')!r}")
    text = json.dumps(_finite_or_none(record), indent=2, allow_nan=False)
    return write_text(Path(run_dir) / METRICS_FILE, text + "\n")


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise XrayExpError(f"{path}: no metrics.json (not a run folder, or the run never started)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise XrayExpError(f"{path}: corrupted metrics.json ({e})") from None
    if not isinstance(record, dict) or "value" not in record or "objective" not in record:
        raise XrayExpError(f"{path}: metrics.json lacks 'objective'/'value'")
    return record
