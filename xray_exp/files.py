"""Files the project reads and writes.

Writes are atomic: a crash leaves either the old file/folder or the new one, never half of one.
YAML is read with one-line errors that name the file.
"""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from xray_exp.errors import XrayExpError


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing file raises FileNotFoundError, bad YAML one XrayExpError line."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise XrayExpError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def write_text(path: str | Path, text: str) -> Path:
    """Write text to path via a temp file in the same folder and an atomic rename."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def building_dir(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside target; on success it replaces target in one rename.

    The temp folder is removed on any error, so a failed build leaves nothing behind. With
    force=True an existing target is swapped out (renamed away, then deleted) only after the new
    one is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if force and target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)  # fails if target is a non-empty folder: the caller checked before
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
