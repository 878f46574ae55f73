"""Runs grouped by one setting (`xray-exp compare DIR --by claim`): one row per value, each measured
against a reference group with a 95 % interval (statistics in effects.py).

A run's value for the key is what its command line said (`.hydra/overrides.yaml`), else what its
composed config holds (`.hydra/config.yaml`), else the config-group choice Hydra recorded
(`.hydra/hydra.yaml`), else "(default)". Besides the objective, each row has mAP50-95 and the number
of epochs the runs took to first reach each of the guide's mAP50 milestones (monitor.milestones,
e.g. 0.12, 0.25, 0.40, ...), read from results.csv.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from xray_exp.analysis import effects
from xray_exp.analysis.compare import Run, objective_names
from xray_exp.analysis.plots import read_curve
from xray_exp.errors import XrayExpError
from xray_exp.files import read_yaml

DEFAULT = "(default)"       # runs that did not set the key
REFERENCE_VALUE = "baseline"  # the reference group when there is one with this value (claim=baseline)
MILESTONE_METRIC = "mAP50"  # the guide's milestones are mAP50 floors


@dataclass
class Group:
    value: str
    runs: list[Run]
    stats: effects.GroupStats         # of the objective
    effect: effects.Effect | None     # vs the reference group; None for the reference itself
    map50_95: effects.GroupStats
    milestone_epochs: dict[float, list[int | None]]  # milestone -> per run: first epoch at or above it


def run_value(run: Run, key: str) -> str:
    """The run's value for an override key or config path (see the module docstring)."""
    if key in run.overrides:
        return run.overrides[key]
    config = run.path / ".hydra" / "config.yaml"
    if config.is_file():
        try:
            value = OmegaConf.select(OmegaConf.load(config), key, throw_on_missing=False)
        except OmegaConfBaseException:  # an interpolation only Hydra can resolve (${hydra:...})
            value = None
        if value is not None:
            return str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
    hydra_yaml = run.path / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():
        choices = ((read_yaml(hydra_yaml) or {}).get("hydra") or {}).get("runtime", {}).get("choices") or {}
        if choices.get(key) is not None:
            return str(choices[key])
    return DEFAULT


def milestones_of(runs: Sequence[Run]) -> list[float]:
    """The mAP50 milestone values the runs were monitored against (the first run that has them)."""
    for run in runs:
        config = run.path / ".hydra" / "config.yaml"
        if config.is_file():
            pairs = ((read_yaml(config) or {}).get("monitor") or {}).get("milestones") or []
            return sorted({float(v) for _, v in pairs})
    return []


def epochs_to(run: Run, milestones: Sequence[float]) -> dict[float, int | None]:
    """First epoch whose validation mAP50 reached each milestone (None: never), from results.csv."""
    epochs, values = read_curve(run.path, MILESTONE_METRIC)
    return {m: next((e for e, v in zip(epochs, values) if v >= m), None) for m in milestones}


def group_runs(runs: Sequence[Run], key: str, reference: str | None = None) -> tuple[list[Group], str]:
    """(groups in order of first appearance with the reference first, the reference's value).

    The reference is `reference` if given, else the "baseline" group if there is one, else the first.
    Runs without metrics.json (unfinished) count in no statistic; failed runs have no value and are
    left out of the statistics the same way (each group's n says how many counted).
    """
    objectives = objective_names(runs)
    if len(objectives) > 1:
        raise XrayExpError(f"runs were judged by different objectives ({', '.join(objectives)}): their values "
                           "do not compare; group runs of one objective")
    by_value: dict[str, list[Run]] = {}
    for run in runs:
        by_value.setdefault(run_value(run, key), []).append(run)
    if reference is None:
        reference = REFERENCE_VALUE if REFERENCE_VALUE in by_value else next(iter(by_value))
    elif reference not in by_value:
        raise XrayExpError(f"--reference {reference}: no run has {key}={reference}; values: {', '.join(by_value)}")
    milestones = milestones_of(runs)
    ref_values = [r.value for r in by_value[reference]]
    groups = []
    for value in [reference, *(v for v in by_value if v != reference)]:
        members = by_value[value]
        values = [r.value for r in members]
        groups.append(Group(
            value=value, runs=members, stats=effects.summarize(values),
            effect=None if value == reference else effects.difference(values, ref_values),
            map50_95=effects.summarize([((r.record or {}).get("metrics") or {}).get("mAP50-95") for r in members]),
            milestone_epochs=_milestone_epochs(members, milestones)))
    return groups, reference


def _milestone_epochs(runs: Sequence[Run], milestones: Sequence[float]) -> dict[float, list[int | None]]:
    finished = [r for r in runs if r.record is not None]
    per_run = [epochs_to(r, milestones) for r in finished]
    return {m: [e[m] for e in per_run] for m in milestones}


# ---- tables -----------------------------------------------------------------------------------------

def _pm(s: effects.GroupStats) -> str:
    if s.mean is None:
        return "-"
    return f"{s.mean:.4f}" if s.sd is None else f"{s.mean:.4f} ± {s.sd:.4f}"


def _interval(ci: tuple[float, float] | None, signed: bool = False) -> str:
    if ci is None:
        return "-"
    f = "{:+.4f}" if signed else "{:.4f}"
    return f"[{f.format(ci[0])}, {f.format(ci[1])}]"


def _reached(epochs: list[int | None]) -> str:
    hit = [e for e in epochs if e is not None]
    if not epochs:
        return "-"
    mean = f"{sum(hit) / len(hit):.1f}" if hit else "-"
    return f"{mean} ({len(hit)}/{len(epochs)})"


def milestone_column(m: float) -> str:
    return f"epochs to {m:g}"


def display_rows(groups: Sequence[Group], key: str, reference: str) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) as they read in the terminal and in markdown."""
    milestones = list(groups[0].milestone_epochs) if groups else []
    columns = [key, "n", "objective (mean ± sd)", "95% CI", f"Δ vs {reference}", "Δ 95% CI (Welch)", "p",
               "verdict", "mAP50-95", *map(milestone_column, milestones)]
    rows = []
    for g in groups:
        e = g.effect
        row = {key: g.value, "n": str(g.stats.n), "objective (mean ± sd)": _pm(g.stats),
               "95% CI": _interval(g.stats.ci) if g.stats.ci else (g.stats.why_no_ci or "-"),
               f"Δ vs {reference}": "-" if e is None or e.diff is None else f"{e.diff:+.4f}",
               "Δ 95% CI (Welch)": "-" if e is None else _interval(e.ci, signed=True),
               "p": "-" if e is None or e.p is None else f"{e.p:.3f}",
               "verdict": effects.REFERENCE if e is None else e.verdict,
               "mAP50-95": _pm(g.map50_95)}
        row.update({milestone_column(m): _reached(g.milestone_epochs[m]) for m in milestones})
        rows.append(row)
    return columns, rows


def numeric_rows(groups: Sequence[Group], key: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) with full-precision numbers, for CSV."""
    milestones = list(groups[0].milestone_epochs) if groups else []
    columns = [key, "n", "mean", "sd", "ci_low", "ci_high", "diff", "diff_low", "diff_high", "p", "verdict",
               "mAP50-95_mean", "mAP50-95_sd", *(f"{milestone_column(m)} (mean of runs reaching it)" for m in milestones)]
    rows = []
    for g in groups:
        e, s = g.effect, g.stats
        row = {key: g.value, "n": s.n, "mean": s.mean, "sd": s.sd,
               "ci_low": s.ci[0] if s.ci else None, "ci_high": s.ci[1] if s.ci else None,
               "diff": e.diff if e else None, "diff_low": e.ci[0] if e and e.ci else None,
               "diff_high": e.ci[1] if e and e.ci else None, "p": e.p if e else None,
               "verdict": effects.REFERENCE if e is None else e.verdict,
               "mAP50-95_mean": g.map50_95.mean, "mAP50-95_sd": g.map50_95.sd}
        for m in milestones:
            hit = [x for x in g.milestone_epochs[m] if x is not None]
            row[f"{milestone_column(m)} (mean of runs reaching it)"] = sum(hit) / len(hit) if hit else None
        rows.append(row)
    return columns, rows


def forest_plot(groups: Sequence[Group], key: str, reference: str, objective: str, out: str | Path) -> Path:
    """One line per non-reference group: its difference to the reference and Welch's interval."""
    from xray_exp.analysis.plots import forest_plot as draw

    lines = [(f"{g.value} (n={g.stats.n})", g.effect.diff, g.effect.ci, g.effect.verdict)
             for g in groups if g.effect is not None]
    return draw(lines, f"{objective}: difference to {key}={reference} (95% Welch t interval)",
                f"Δ {objective} vs {reference}", out)


def describe_reference(groups: Sequence[Group]) -> str:
    """A note when the reference has fewer than 2 finished runs (no difference gets an interval)."""
    ref = groups[0].stats
    if ref.n < 2:
        return f"note: the reference group has {ref.n} finished run(s); differences need 2 per group"
    return ""
