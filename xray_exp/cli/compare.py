"""`xray-exp compare | eval | predict`: look at finished runs and at what their weights do.

Tables go to stdout (rich in a terminal, plain text when piped); notes about skipped folders and files
written go to stderr, so `xray-exp compare ... > table.txt` holds the table only.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from xray_exp.errors import XrayExpError

HEADERS = {"mAP50-95": "mAP50\n-95", "best_epoch": "best\nepoch", "epochs_completed": "epochs\ndone",
           "stop_reason": "stop\nreason", "wall_s": "wall\ns", "train_images_per_s": "train\nimg/s",
           "precision": "preci-\nsion"}


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="one table (and plots) of many run, multirun and sweep folders")
    p.add_argument("paths", nargs="+", metavar="PATH", help="run, multirun or sweep folders, in any mix")
    p.add_argument("--sort", default="objective", metavar="KEY",
                   help="column to sort by, high to low, empty last (default: objective)")
    p.add_argument("--ascending", action="store_true", help="sort low to high instead")
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write the rows as CSV (full precision)")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the rows as a markdown table")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write PNGs: curves, objective vs parameters, study")
    p.set_defaults(func=_compare)

    p = subparsers.add_parser("eval", help="mAP, per-class AP50 and the guide's accuracy of weights on a split")
    p.add_argument("--weights", type=Path, required=True, help="a .pt checkpoint (e.g. RUN/weights/best.pt)")
    p.add_argument("--data", type=Path, required=True, help="the dataset's data.yaml")
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--conf", type=float, default=0.10,
                   help="confidence threshold of the guide's accuracy (default 0.10; mAP uses Ultralytics' own)")
    p.add_argument("--out", type=Path, help="output folder (default outputs/eval/<date>_<time>)")
    p.add_argument("--device", default="cpu", help="cpu, 0, 0,1 ... (default cpu)")
    p.add_argument("--imgsz", type=int, help="image size (default: the size the weights were trained at)")
    p.set_defaults(func=_eval)

    p = subparsers.add_parser("predict", help="draw a model's detections on images, plus a gallery PNG")
    p.add_argument("source", type=Path, metavar="SOURCE", help="an image or a folder of images")
    p.add_argument("--weights", type=Path, required=True, help="a .pt checkpoint")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--device", default="cpu", help="cpu, 0, ... (default cpu)")
    p.add_argument("--imgsz", type=int, help="image size (default: the size the weights were trained at)")
    p.set_defaults(func=_predict)


def _compare(args: argparse.Namespace) -> int:
    from xray_exp import compare

    found = compare.find_runs(args.paths)
    for line in found.skipped:
        print(line, file=sys.stderr)
    if not found.runs:
        raise XrayExpError(f"no run folders (metrics.json or .hydra/) under {' '.join(map(str, args.paths))}")
    columns, rows = compare.build_rows(found.runs, args.sort, args.ascending)
    objectives = compare.objective_names(found.runs)
    title = f"{len(rows)} runs, sorted by {args.sort}; objective: {', '.join(objectives) or '-'}"
    if len(objectives) > 1:
        title += " (different objectives: their values do not compare)"
    _print_table(columns, rows, title)
    if args.csv:
        _note(compare.write_csv(args.csv, columns, rows))
    if args.markdown:
        _note(compare.write_markdown(args.markdown, columns, rows))
    if args.plot:
        from xray_exp.plots import compare_plots

        for path in compare_plots(found.runs, found.studies, args.plot):
            _note(path)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from xray_exp.evaluate import evaluate

    out = args.out or Path("outputs/eval") / time.strftime("%Y-%m-%d_%H-%M-%S")
    record = evaluate(args.weights, args.data, args.split, args.conf, out, args.device, args.imgsz)
    m = record["metrics"]
    title = (f"{args.split}: mAP50 {m['mAP50']:.4f}  mAP50-95 {m['mAP50-95']:.4f}  precision {m['precision']:.4f}  "
             f"recall {m['recall']:.4f}  accuracy@{args.conf:g} {_fmt(record['accuracy'])}  "
             f"detection rate {_fmt(record['detection_rate'])}  ({record['images']} labelled images, "
             f"{record['background_images']} background, {record['background_detected']} of them with a detection)")
    rows = [{"class": name, "AP50": _fmt(record["per_class_ap50"].get(name)), "images": acc["images"],
             "correct": acc["correct"], "accuracy": _fmt(acc["accuracy"])}
            for name, acc in record["per_class"].items()]
    _print_table(["class", "AP50", "images", "correct", "accuracy"], rows, title)
    _note(Path(out) / "eval.json")
    _note(Path(record["confusion_matrix"]))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from xray_exp.predict import predict

    written = predict(args.weights, args.source, args.out, args.conf, args.device, args.imgsz)
    print(f"{len(written) - 1} images drawn into {args.out}; gallery: {written[-1]}")
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _note(path: Path) -> None:
    print(f"wrote {path}", file=sys.stderr)


def _print_table(columns: Sequence[str], rows: Sequence[dict[str, Any]], title: str) -> None:
    """A rich table for a person at a terminal, aligned plain text for pipes and files."""
    from xray_exp.compare import format_value, to_plain

    if not sys.stdout.isatty():
        print(title)
        sys.stdout.write(to_plain(columns, rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for c in columns:
        # Two-line headers keep 12+ columns inside an ordinary terminal; cells never wrap mid-number.
        table.add_column(HEADERS.get(c, c), justify="left" if c in ("run", "class", "stop_reason") else "right",
                         min_width=len(max(HEADERS.get(c, c).split("\n"), key=len)))
    for row in rows:
        table.add_row(*(format_value(c, row.get(c)) for c in columns))
    console = Console()
    needed = console.measure(table, options=console.options.update_width(10_000)).maximum
    # Too wide for the terminal: let lines wrap rather than have rich cut numbers short.
    (Console(width=needed) if needed > console.width else console).print(table)
