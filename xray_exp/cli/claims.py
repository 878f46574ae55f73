"""`xray-exp claims [--seeds N] [--claims a,b+c] [--out DIR] [overrides...]`: the guide's claims x seeds
into one multirun folder, resumable; then `xray-exp compare DIR --by claim` (xray_exp/claims.py)."""
import argparse
import shlex
import sys
from pathlib import Path

DEFAULT_OUT = Path("outputs/claims")


def register(subparsers) -> None:
    from xray_exp.claims import available

    p = subparsers.add_parser(
        "claims", help="run the guide's claims (claim=...) with several seeds each into one folder, resumable",
        description="Run each selected claim (conf/claim/: the guide's old column plus one change) with seeds "
                    "0..N-1 into one multirun folder, one run folder per claim and seed. A re-run skips finished "
                    "runs and redoes failed or interrupted ones. Then: xray-exp compare DIR --by claim.",
        epilog=f"claims: {', '.join(available())}. Shorten runs with ++claim.epochs=[old,new] "
               "++claim.patience=[old,new] (an epochs= override would erase the schedule claim and is refused).")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per claim: 0..N-1 (default 3)")
    p.add_argument("--claims", metavar="A,B+C",
                   help="claims to run, comma-separated; A+B runs claims A and B together (an interaction). "
                        "baseline is always added. Default: every claim whose data is there")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                   help=f"the multirun folder (default {DEFAULT_OUT}); the same DIR resumes")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes at once, each training part of the grid (default 1: one process for the whole grid)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the Hydra command; run nothing")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. experiment=demo")
    p.set_defaults(func=_claims)


def _claims(args: argparse.Namespace) -> int:
    from xray_exp import claims

    selected = claims.parse_claims(args.claims) if args.claims else None
    outcome = claims.run(args.out, args.seeds, selected, args.overrides, workers=args.workers, dry_run=args.dry_run)
    print(f"hydra command: python -m xray_exp {shlex.join(outcome.command)}")
    left = len(outcome.jobs) - len(outcome.finished)
    if args.dry_run:
        print(f"{len(outcome.jobs)} runs: {len(outcome.finished)} finished, {left} to run (dry run: nothing started)")
        return 0
    print(f"{len(outcome.jobs)} runs: {len(outcome.ran)} ran now, {len(outcome.finished)} finished"
          + (f", {left} not finished (failed: see their metrics.json)" if left else ""))
    print(f"next: xray-exp compare {args.out} --by claim --plot {args.out / 'plots'}")
    if left:
        print(f"xray-exp claims: {left} runs did not finish; run the same command again to retry them", file=sys.stderr)
        return 1
    return 0
