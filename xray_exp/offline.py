"""Offline-by-design settings for Ultralytics, applied before it is imported."""
import os
from pathlib import Path


def configure_offline() -> None:
    """Make every Ultralytics download fail at once and keep its settings out of the work tree.

    setdefault, so a user who knows better (e.g. a shared YOLO_CONFIG_DIR) keeps control.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")  # downloads fail immediately instead of retrying
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install missing packages mid-run
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    config_dir = cache / "xray_exp" / "ultralytics"
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
