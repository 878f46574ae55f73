"""Run folders under any mix of paths -> one table of comparable rows (and its CSV / markdown forms).

A run folder is recognised by its `.hydra/` folder or its metrics.json (the run-folder contract in
run_folder.py), so single runs, multirun folders and sweep folders all work, in any mix. Only
metrics.json, `.hydra/overrides.yaml` and results.csv are read; nothing is written into a run folder.
"""
import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence


from xray_exp.files import read_yaml, write_text
from xray_exp.errors import XrayExpError
from xray_exp.run.run_folder import METRICS_FILE, RESULTS_FILE, read_metrics

UNFINISHED = "unfinished"  # a .hydra/ folder but no metrics.json yet: running, killed or crashed hard
# Override keys that say how a run was launched, not what it trained with.
IGNORED_OVERRIDE_PREFIXES = ("hydra.", "trial.")
METRIC_COLUMNS = ("objective", "mAP50", "mAP50-95", "precision", "recall", "best_epoch", "epochs_completed",
                  "stop_reason", "wall_s", "train_images_per_s")
DECIMALS = {"objective": 4, "mAP50": 4, "mAP50-95": 4, "precision": 4, "recall": 4, "wall_s": 1,
            "train_images_per_s": 1}


@dataclass
class Run:
    path: Path
    overrides: dict[str, str]     # key -> value as typed on the command line (hydra.*/trial.* dropped)
    record: dict[str, Any] | None  # metrics.json; None while the run is unfinished
    epochs_in_csv: int | None = None  # results.csv rows: how far an unfinished run got

    @property
    def state(self) -> str:
        if self.record is None:
            return UNFINISHED
        return self.record.get("stop_reason") or "unknown"

    @property
    def objective_name(self) -> str | None:
        return self.record.get("objective") if self.record else None

    @property
    def value(self) -> float | None:
        return self.record.get("value") if self.record else None


@dataclass
class Found:
    runs: list[Run] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per broken folder
    studies: list[Path] = field(default_factory=list)  # Optuna SQLite files found beside job folders


def find_runs(paths: Iterable[str | Path]) -> Found:
    """Every run folder under `paths` once (in path order, job folders numerically), broken ones listed."""
    found = Found()
    seen: set[Path] = set()
    studies: dict[Path, None] = {}  # ordered set
    for given in paths:
        given = Path(given)
        if not given.is_dir():
            raise XrayExpError(f"{given}: not a folder (expected a run, multirun or sweep folder)")
        for folder, dirnames, filenames in os.walk(given):
            folder_path = Path(folder)
            if ".hydra" in dirnames or METRICS_FILE in filenames:
                dirnames.clear()  # a run folder's weights/ and plots hold no further runs
                resolved = folder_path.resolve()
                if resolved not in seen:
                    seen.add(resolved)
                    _read_run(folder_path, found)
                continue
            # Hidden folders are .hydra/ of a multirun parent and atomic-write temp folders.
            dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=_natural)
            studies.update(dict.fromkeys(sorted(p.resolve() for p in folder_path.glob("*.db"))))
    found.studies = list(studies)
    return found


def _natural(name: str) -> list:
    """Sort key putting job folder 10 after 9."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def _read_run(folder: Path, found: Found) -> None:
    try:
        record = read_metrics(folder) if (folder / METRICS_FILE).exists() else None
        overrides = read_overrides(folder)
    except XrayExpError as e:
        found.skipped.append(f"skipped {folder}: {e}")
        return
    found.runs.append(Run(folder, overrides, record, _results_rows(folder) if record is None else None))


def read_overrides(run_dir: Path) -> dict[str, str]:
    """The run's command-line overrides as key -> value, without hydra.* and trial.* keys."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    items = read_yaml(path) or []
    if not isinstance(items, list):
        raise XrayExpError(f"{path}: expected a list of overrides")
    out = {}
    for item in map(str, items):
        key, _, value = item.partition("=")
        key = key.lstrip("+~")  # +key=v adds, ++key=v forces, ~key deletes: the key is what varies
        if not key.startswith(IGNORED_OVERRIDE_PREFIXES):
            out[key] = value
    return out


def _results_rows(run_dir: Path) -> int | None:
    path = run_dir / RESULTS_FILE
    if not path.exists():
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return max(0, sum(1 for line in f if line.strip()) - 1)


def differing_overrides(runs: Sequence[Run]) -> list[str]:
    """Override keys whose value is not the same in every run (absent counts as a value), in first-seen order."""
    keys = list(dict.fromkeys(k for run in runs for k in run.overrides))
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def run_names(runs: Sequence[Run]) -> list[str]:
    """Short names: paths relative to the runs' common folder (a single run keeps its folder name)."""
    if len(runs) == 1:
        return [runs[0].path.resolve().name]
    paths = [str(r.path.resolve()) for r in runs]
    common = os.path.commonpath(paths)
    return [os.path.relpath(p, common) for p in paths]


def build_rows(runs: Sequence[Run], sort: str = "objective", ascending: bool = False
               ) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): run, the differing overrides, then the metric columns; sorted by `sort`.

    Sorting is high-to-low unless ascending; runs without a value for the key always go last.
    """
    swept = differing_overrides(runs)
    # An override of a root key can share a metric column's name (`objective=mAP50-95`).
    override_cols = {k: f"override:{k}" if k in METRIC_COLUMNS or k == "run" else k for k in swept}
    columns = ["run", *override_cols.values(), *METRIC_COLUMNS]
    rows = []
    for name, run in zip(run_names(runs), runs):
        rec = run.record or {}
        metrics = rec.get("metrics") or {}
        row: dict[str, Any] = {"run": name}
        row.update({col: run.overrides.get(k) for k, col in override_cols.items()})
        row.update({
            "objective": run.value, "mAP50": metrics.get("mAP50"), "mAP50-95": metrics.get("mAP50-95"),
            "precision": metrics.get("precision"), "recall": metrics.get("recall"),
            "best_epoch": rec.get("best_epoch"),
            "epochs_completed": rec.get("epochs_completed", run.epochs_in_csv),
            "stop_reason": run.state, "wall_s": rec.get("wall_s"),
            "train_images_per_s": rec.get("train_images_per_s")})
        rows.append(row)
    # A column name wins: `--sort objective` is the metric even when a run has an `objective=` override,
    # which is sorted by as `--sort override:objective`.
    if sort not in columns:
        raise XrayExpError(f"--sort {sort}: not a column; choose from {', '.join(columns)}")
    return columns, sort_rows(rows, sort, ascending)


def sort_rows(rows: list[dict[str, Any]], key: str, ascending: bool = False) -> list[dict[str, Any]]:
    """Stable sort by one column; numbers (also numeric strings such as override values) compare as numbers."""
    def as_key(value):
        number = _as_number(value)
        return (0, number, "") if number is not None else (1, 0.0, str(value))

    present = [r for r in rows if r.get(key) is not None and not _is_nan(r.get(key))]
    missing = [r for r in rows if r not in present]
    return sorted(present, key=lambda r: as_key(r[key]), reverse=not ascending) + missing


def _as_number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def format_value(column: str, value: Any) -> str:
    """How a cell reads in the terminal and in markdown (CSV keeps full precision)."""
    if value is None:
        return "-"
    if isinstance(value, float) and column in DECIMALS:
        return f"{value:.{DECIMALS[column]}f}"
    if isinstance(value, str) and len(value) > 8:
        # Optuna's draws come as full reprs (lr.lr0=0.00184591819228225): 4 significant digits read better
        number = _as_number(value)
        if number is not None and not number.is_integer():
            return f"{number:.4g}"
    return str(value)


def to_csv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """Full-precision CSV (floats as repr, so they parse back to the same numbers); missing = empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return buf.getvalue()


def to_markdown(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", r"\|")

    lines = ["| " + " | ".join(map(cell, columns)) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(format_value(c, row.get(c))) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_plain(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """Space-aligned text for pipes and logs: one header line, one line per run."""
    cells = [list(columns)] + [[format_value(c, row.get(c)) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells) + "\n"


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    return write_text(path, to_csv(columns, rows))


def write_markdown(path: str | Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    return write_text(path, to_markdown(columns, rows))


def objective_names(runs: Sequence[Run]) -> list[str]:
    """The objectives the runs were judged by (more than one means their values do not compare)."""
    return sorted({r.objective_name for r in runs if r.objective_name})
