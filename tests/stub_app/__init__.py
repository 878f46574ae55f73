"""The stub Hydra app (app.py) the sweeper tests sweep, a way to run it in the test's own process, and
folders in memory for its studies."""
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Iterator
from unittest import mock

APP = Path(__file__).resolve().parent / "app.py"


def run_stub(*overrides: str, multirun: bool = True) -> int:
    """`python tests/stub_app/app.py [-m] overrides...` in this process (no interpreter and import start-up,
    which is most of a stub sweep's time): its exit code. Output goes to the test's captured stdout/stderr."""
    from stub_app.app import main

    argv = [str(APP), *(["-m"] if multirun else []), *overrides]
    with mock.patch.object(sys, "argv", argv):
        try:
            main()
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else 1
    return 0


@contextlib.contextmanager
def memory_dir(fallback: Path) -> Iterator[Path]:
    """A folder in memory where the OS offers one (/dev/shm), else `fallback`: SQLite syncs every commit to
    disk, and on a busy shared disk that, not the sweeper, is most of a stub sweep's time."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield fallback
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="xray_exp-test-") as folder:
        yield Path(folder)
