"""`xray-exp`: the thin command-line layer. Each verb module registers its parser and a handler;
library errors (XrayExpError, missing files) become one line on stderr and exit code 2."""
import argparse
import logging
import sys

from xray_exp.errors import XrayExpError

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    from xray_exp.cli import claims, compare, dashboard, data, evaluate, predict, sweep

    parser = argparse.ArgumentParser(
        prog="xray-exp",
        description="Experiment tools for YOLO detectors on X-ray scans. "
                    "Training itself: python -m xray_exp [hydra overrides].")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    data_group = verbs.add_parser("data", help="build, merge, convert and audit YOLO datasets")
    data_verbs = data_group.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    data.register(data_verbs)
    claims.register(verbs)
    compare.register(verbs)
    dashboard.register(verbs)
    evaluate.register(verbs)
    predict.register(verbs)
    sweep.register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Our own progress lines at INFO; libraries (alembic under Optuna, …) only when they warn.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("xray_exp").setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (XrayExpError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        print(f"xray-exp: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("xray-exp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
