"""How the CLI prints tables: rich for a person at a terminal, aligned plain text for pipes and files.

Tables go to stdout; notes about files written go to stderr, so `xray-exp compare ... > table.txt`
holds the table only.
"""
import sys
from pathlib import Path
from typing import Any, Sequence

from xray_exp.analysis.compare import format_value, to_plain

HEADERS = {"mAP50-95": "mAP50\n-95", "best_epoch": "best\nepoch", "epochs_completed": "epochs\ndone",
           "stop_reason": "stop\nreason", "wall_s": "wall\ns", "train_images_per_s": "train\nimg/s",
           "precision": "preci-\nsion"}


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def note(path: Path) -> None:
    print(f"wrote {path}", file=sys.stderr)


def print_table(columns: Sequence[str], rows: Sequence[dict[str, Any]], title: str) -> None:
    """A rich table for a person at a terminal, aligned plain text for pipes and files."""
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
