"""Offline-by-design settings for Ultralytics, applied before it is imported."""
import os
from pathlib import Path


def _config_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "xray_exp" / "ultralytics"


def configure_offline() -> None:
    """Make every Ultralytics download fail at once and keep its settings out of the work tree.

    setdefault, so a user who knows better (e.g. a shared YOLO_CONFIG_DIR) keeps control.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")  # downloads fail immediately instead of retrying
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install missing packages mid-run
    config_dir = _config_dir()
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))


def pin_ultralytics_dirs() -> None:
    """Keep Ultralytics' weights/runs folders in our cache and its analytics off.

    Its settings default weights_dir to `<git root or cwd>/weights`, and on CUDA the AMP self-check
    tries to fetch yolo26n.pt into it, leaving an empty ./weights folder in the user's project.
    check_amp() reads ultralytics.utils.WEIGHTS_DIR at call time, so the module value is set too.
    """
    import ultralytics.utils as uu

    config_dir = Path(os.environ["YOLO_CONFIG_DIR"])
    wanted = {"weights_dir": str(config_dir / "weights"), "runs_dir": str(config_dir / "runs"), "sync": False}
    if any(uu.SETTINGS.get(k) != v for k, v in wanted.items()):
        uu.SETTINGS.update(wanted)
    uu.WEIGHTS_DIR = Path(wanted["weights_dir"])
