"""The run-folder contract: one folder per run (named so, and never reused), metrics.json (written
atomically) and how it is read back."""
import json
import math
import os
from pathlib import Path
from typing import Any

from xray_exp.files import write_text
from xray_exp.errors import XrayExpError

METRICS_FILE = "metrics.json"  # the run's summary, written last (atomically) by run/train.py
RESULTS_FILE = "results.csv"   # Ultralytics' per-epoch table, grown while the run trains
WEIGHTS_DIR = "weights"        # Ultralytics' best.pt and last.pt
# interrupted: Ctrl-C or SIGTERM; the record keeps the epochs done and the best so far.
STOP_REASONS = ("completed", "patience", "time", "pruned", "gate", "nan", "interrupted", "failed")
PID_RESOLVER = "xray_exp.pid"  # conf/train.yaml: ${xray_exp.pid:} in the run and multirun folder names


def register_resolvers() -> None:
    """The resolver conf/train.yaml's folder names use: this process's id. Two runs started in the same
    microsecond on one machine still get two folders (they cannot share a pid). Cached, like Hydra's `now`."""
    from omegaconf import OmegaConf  # deferred: reading run folders needs no OmegaConf

    OmegaConf.register_new_resolver(PID_RESOLVER, os.getpid, use_cache=True, replace=True)


def check_unused(run_dir: str | Path) -> None:
    """Refuse a folder that holds another run's results: training there would mix the two runs' files."""
    run_dir = Path(run_dir)
    held = [name for name in (METRICS_FILE, RESULTS_FILE, WEIGHTS_DIR) if (run_dir / name).exists()]
    if held:
        raise XrayExpError(f"{run_dir} already holds another run's results ({', '.join(held)}); leave "
                           "hydra.run.dir unset (every run gets a folder of its own) or give a new folder")


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
