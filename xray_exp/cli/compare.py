"""`xray-exp compare PATH...`: one table (and plots) of many run, multirun and sweep folders."""
import argparse
import sys
from pathlib import Path

from xray_exp.cli.table import note, print_table
from xray_exp.errors import XrayExpError


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="one table (and plots) of many run, multirun and sweep folders")
    p.add_argument("paths", nargs="+", metavar="PATH", help="run, multirun or sweep folders, in any mix")
    p.add_argument("--sort", default="objective", metavar="KEY",
                   help="column to sort by, high to low, empty last (default: objective, the metric; an "
                        "override named like a metric column is override:KEY)")
    p.add_argument("--ascending", action="store_true", help="sort low to high instead")
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write the rows as CSV (full precision)")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the rows as a markdown table")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write PNGs: curves, objective vs parameters, study")
    p.add_argument("--by", metavar="KEY", help="one row per value of KEY (claim, optimizer.optimizer, ...): n, "
                   "mean ± sd, 95%% CI, difference to the reference with Welch's 95%% CI (scipy), verdict; "
                   "--plot adds a forest plot")
    p.add_argument("--reference", metavar="VALUE", help="with --by: the group the others are measured against "
                   "(default: baseline if present, else the first group)")
    p.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from xray_exp.analysis import compare

    found = compare.find_runs(args.paths)
    for line in found.skipped:
        print(line, file=sys.stderr)
    if not found.runs:
        raise XrayExpError(f"no run folders (metrics.json or .hydra/) under {' '.join(map(str, args.paths))}")
    if args.by:
        return _compare_groups(args, found.runs)
    columns, rows = compare.build_rows(found.runs, args.sort, args.ascending)
    objectives = compare.objective_names(found.runs)
    title = f"{len(rows)} runs, sorted by {args.sort}; objective: {', '.join(objectives) or '-'}"
    if len(objectives) > 1:
        title += " (different objectives: their values do not compare)"
    print_table(columns, rows, title)
    if args.csv:
        note(compare.write_csv(args.csv, columns, rows))
    if args.markdown:
        note(compare.write_markdown(args.markdown, columns, rows))
    if args.plot:
        from xray_exp.analysis.plots import compare_plots

        for path in compare_plots(found.runs, found.studies, args.plot):
            note(path)
    return 0


def _compare_groups(args: argparse.Namespace, runs) -> int:
    """`--by KEY`: the runs grouped by KEY's value, each group against the reference."""
    from xray_exp.analysis import compare, groups

    grouped, reference = groups.group_runs(runs, args.by, args.reference)
    objective = (compare.objective_names(runs) or ["objective"])[0]
    columns, rows = groups.display_rows(grouped, args.by, reference)
    print_table(columns, rows, f"{len(runs)} runs in {len(grouped)} groups by {args.by}; objective: {objective} "
                               f"(t 95% CI of the mean; difference: Welch's t 95% CI, scipy)")
    if groups.describe_reference(grouped):
        print(groups.describe_reference(grouped), file=sys.stderr)
    if args.csv:
        note(compare.write_csv(args.csv, *groups.numeric_rows(grouped, args.by)))
    if args.markdown:
        note(compare.write_markdown(args.markdown, columns, rows))
    if args.plot:
        name = args.by.replace("/", "_")  # a config-group key (claim/base) names a file, not a folder
        note(groups.forest_plot(grouped, args.by, reference, objective, args.plot / f"forest_{name}.png"))
    return 0
