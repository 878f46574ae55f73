"""The pictures people would otherwise draw by hand from run folders and a sweep's Optuna study.

Matplotlib's object API with the Agg canvas (no pyplot: no global backend switch, no display needed);
each PNG is rendered to memory and written atomically.

Parameter importance is not Optuna's: Optuna 2.10's evaluators (fANOVA, mean decrease impurity) need
scikit-learn, a heavy dependency for one bar chart. Instead each parameter gets a documented,
assumption-light score in [0, 1] over the completed trials: |Spearman ρ| between a numeric parameter
and the objective (how monotonic the relation is), and for a categorical parameter the correlation
ratio η (the share of the objective's spread, as a square root, explained by the category means). Both
are 0 for no relation and 1 for a perfect one; with a handful of trials they are rough, like fANOVA.
"""
import csv
import io
import logging
import math
import re
import sqlite3
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xray_exp.files import write_bytes
from xray_exp.analysis.compare import Run, differing_overrides, run_names
from xray_exp.run.monitor import OBJECTIVE_KEYS
from xray_exp.run.run_folder import RESULTS_FILE

log = logging.getLogger(__name__)

# results.csv column per objective. Ultralytics 8.4's fitness is mAP50-95 alone
# (ultralytics/utils/metrics.py, Metric.fitness weights [0, 0, 0, 1]).
CURVE_COLUMNS = {**OBJECTIVE_KEYS, "fitness": OBJECTIVE_KEYS["mAP50-95"]}


def save_figure(fig: Figure, out: str | Path) -> Path:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return write_bytes(out, buf.getvalue())


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def read_curve(run_dir: Path, objective: str) -> tuple[list[int], list[float]]:
    """(epochs, objective per epoch) from a run's results.csv; empty when it has none yet."""
    path = run_dir / RESULTS_FILE
    if not path.exists():
        return [], []
    column = CURVE_COLUMNS[objective]
    with path.open(newline="", encoding="utf-8") as f:
        rows = [{k.strip(): v for k, v in row.items() if k} for row in csv.DictReader(f)]
    pairs = [(int(float(r["epoch"])), float(r[column])) for r in rows if r.get(column) not in (None, "")]
    return [e for e, _ in pairs], [v for _, v in pairs]


def objective_curves(curves: dict[str, tuple[list[int], list[float]]], objective: str, out: Path) -> Path:
    """Every run's objective per epoch on one set of axes."""
    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.add_subplot()
    for name, (epochs, values) in curves.items():
        ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(objective)
    ax.set_title(f"{objective} per epoch (val)")
    ax.grid(alpha=0.3)
    if len(curves) <= 20:  # past that a legend hides the curves
        ax.legend(fontsize="small")
    return save_figure(fig, out)


def objective_vs_param(key: str, values: Sequence[str | None], objectives: Sequence[float], objective: str,
                       out: Path) -> Path:
    """Objective against one swept override: numeric axis when every value is a number, else categories."""
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot()
    numbers = [_number(v) for v in values]
    if all(n is not None for n in numbers):
        ax.scatter(numbers, objectives)
        positive = [n for n in numbers if n > 0]
        if len(positive) == len(numbers) and max(positive) / min(positive) >= 100:
            ax.set_xscale("log")  # learning rates and weight decays span decades
    else:
        labels = ["(default)" if v is None else v for v in values]
        categories = list(dict.fromkeys(labels))
        ax.scatter([categories.index(label) for label in labels], objectives)
        ax.set_xticks(range(len(categories)), categories, rotation=30 if len(categories) > 4 else 0)
    ax.set_xlabel(key)
    ax.set_ylabel(objective)
    ax.set_title(f"{objective} vs {key} ({len(objectives)} runs)")
    ax.grid(alpha=0.3)
    return save_figure(fig, out)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def param_importance(trials: Sequence[tuple[dict[str, Any], float]], categorical: set[str]) -> dict[str, float]:
    """Score in [0, 1] per parameter over (params, objective) pairs; see the module docstring.

    Parameters seen in fewer than 3 trials get no score. Sorted high to low.
    """
    names = sorted({p for params, _ in trials for p in params})
    scores = {}
    for name in names:
        pairs = [(params[name], value) for params, value in trials if name in params and math.isfinite(value)]
        if len(pairs) < 3:
            continue
        x = [p for p, _ in pairs]
        y = np.array([v for _, v in pairs], dtype=float)
        scores[name] = _correlation_ratio(x, y) if name in categorical else abs(_spearman(np.array(x, float), y))
    return dict(sorted(scores.items(), key=lambda kv: -kv[1]))


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks with ties sharing their average rank (as Spearman's ρ defines them)."""
    ranks = np.empty(len(a))
    ranks[a.argsort(kind="stable")] = np.arange(len(a), dtype=float)
    for value in np.unique(a):
        tied = a == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0  # a constant has no relation to anything
    return float(np.corrcoef(rx, ry)[0, 1])


def _correlation_ratio(categories: Sequence[Any], y: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    labels = np.array([str(c) for c in categories])
    between = sum(float((labels == c).sum()) * (y[labels == c].mean() - y.mean()) ** 2 for c in np.unique(labels))
    return math.sqrt(between / total)


def importance_chart(scores: dict[str, float], categorical: set[str], title: str, out: Path) -> Path:
    fig = Figure(figsize=(6, 0.5 * len(scores) + 1.5), dpi=100)
    ax = fig.add_subplot()
    names = list(scores)[::-1]  # most important on top
    ax.barh(names, [scores[n] for n in names])
    ax.set_yticks(range(len(names)), [f"{n} (η)" if n in categorical else f"{n} (|ρ|)" for n in names])
    ax.set_xlim(0, 1)
    ax.set_xlabel("|Spearman ρ| (numeric) or correlation ratio η (categorical) with the objective")
    ax.set_title(title)
    return save_figure(fig, out)


def is_optuna_storage(db: Path) -> bool:
    """True for an SQLite file with Optuna's tables; opening anything else through Optuna would create them."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='studies'").fetchone() is not None
    except sqlite3.DatabaseError:
        return False


def study_plots(db: Path, out_dir: Path) -> list[Path]:
    """Optimisation history and parameter importance for every study in an Optuna SQLite file."""
    import optuna

    if not is_optuna_storage(db):
        log.warning(f"{db}: not an Optuna study database; no study plots")
        return []
    storage = f"sqlite:///{db.resolve()}"
    written = []
    for summary in optuna.get_all_study_summaries(storage=storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        name = _safe_name(summary.study_name)
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
            log.warning(f"study {summary.study_name}: no completed trial yet; no study plots")
            continue
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        written.append(history_chart(trials, maximize, summary.study_name, out_dir / f"history_{name}.png"))
        complete = [(t.params, t.value) for t in trials
                    if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
        categorical = {p for t in trials for p, d in t.distributions.items()
                       if isinstance(d, optuna.distributions.CategoricalDistribution)}
        scores = param_importance(complete, categorical)
        if scores:
            written.append(importance_chart(scores, categorical, f"parameter importance: {summary.study_name} "
                                            f"({len(complete)} completed trials)", out_dir / f"importance_{name}.png"))
        else:
            log.warning(f"study {summary.study_name}: fewer than 3 completed trials; no importance plot")
    return written


def history_chart(trials: Sequence, maximize: bool, study_name: str, out: Path) -> Path:
    """Each trial's value by trial number, pruned trials at their last reported value, and the best so far."""
    import optuna

    state = optuna.trial.TrialState
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot()
    complete = sorted((t.number, t.value) for t in trials if t.state == state.COMPLETE and t.value is not None)
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)])
              for t in trials if t.state == state.PRUNED and t.intermediate_values]
    ax.scatter([n for n, _ in complete], [v for _, v in complete], label="completed", zorder=3)
    if pruned:
        ax.scatter([n for n, _ in pruned], [v for _, v in pruned], marker="x", color="grey",
                   label="pruned (last reported)", zorder=3)
    best = np.maximum.accumulate if maximize else np.minimum.accumulate
    ax.step([n for n, _ in complete], best(np.array([v for _, v in complete])), where="post", color="C1",
            label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(f"optimisation history: {study_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(fig, out)


def compare_plots(runs: Sequence[Run], studies: Sequence[Path], out_dir: str | Path) -> list[Path]:
    """All of compare's PNGs into out_dir; returns the files written (a plot without data is skipped)."""
    out_dir = Path(out_dir)
    names = run_names(runs)
    objectives = sorted({r.objective_name for r in runs if r.objective_name})
    # Values of different objectives do not compare: runs judged differently are plotted by mAP50.
    objective = objectives[0] if len(objectives) == 1 else "mAP50"

    def value(run: Run) -> float | None:
        return run.value if len(objectives) == 1 else ((run.record or {}).get("metrics") or {}).get("mAP50")

    written = []
    curves = {name: read_curve(run.path, objective) for name, run in zip(names, runs)}
    curves = {name: c for name, c in curves.items() if c[0]}
    if curves:
        written.append(objective_curves(curves, objective, out_dir / "objective_curves.png"))
    else:
        log.warning("no results.csv in any run; no objective curves")
    finished = [r for r in runs if value(r) is not None and math.isfinite(value(r))]
    for key in differing_overrides(runs):
        if finished:
            written.append(objective_vs_param(key, [r.overrides.get(key) for r in finished],
                                              [value(r) for r in finished], objective,
                                              out_dir / f"objective_vs_{_safe_name(key)}.png"))
    for db in studies:
        written += study_plots(db, out_dir)
    return written


def forest_plot(lines: Sequence[tuple[str, float | None, tuple[float, float] | None, str]], title: str,
                xlabel: str, out: Path) -> Path:
    """A forest plot: per (label, effect, interval, verdict) line, the effect as a dot and its interval
    as a bar, around a vertical line at zero (no effect); first line on top. Coloured by verdict:
    green helps, red hurts, grey no effect detected or no interval (its verdict is written beside it)."""
    colours = {"helps": "tab:green", "hurts": "tab:red"}
    fig = Figure(figsize=(8, 0.45 * len(lines) + 1.6), dpi=100)
    ax = fig.add_subplot()
    ax.axvline(0, color="black", linewidth=1)
    for y, (label, effect, ci, verdict) in enumerate(reversed(lines)):
        colour = colours.get(verdict, "grey")
        if ci is not None:
            ax.plot(ci, [y, y], color=colour, linewidth=2.5, solid_capstyle="butt")
        if effect is not None:
            ax.plot([effect], [y], "o", color=colour, markersize=6)
        ax.annotate(verdict, (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize="small",
                    color=colour)
    ax.set_yticks(range(len(lines)), [label for label, *_ in reversed(lines)])
    ax.set_ylim(-0.7, len(lines) - 0.3)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, out)
