"""The `model` config group -> which local weights to start from (never a download)."""
import logging
from pathlib import Path

from omegaconf import DictConfig

from xray_exp.errors import XrayExpError

log = logging.getLogger(__name__)
MODELS_DIR = Path("models")  # git-ignored; users drop their downloaded COCO weights here


def resolve_weights(model: DictConfig) -> Path | None:
    """Local .pt to fine-tune from, or None to train `model.arch` from scratch.

    `auto`: models/<name>.pt when the user put it there, else from scratch with one warning line.
    An explicit path must exist: Ultralytics would try to download a missing .pt.
    """
    if model.weights in (None, "", "none"):
        return None
    if model.weights == "auto":
        candidate = (MODELS_DIR / f"{model.name}.pt").resolve()
        if candidate.is_file():
            log.info(f"model.weights=auto: fine-tuning from {candidate}")
            return candidate
        log.warning(f"model.weights=auto: {MODELS_DIR / (model.name + '.pt')} not found, training {model.arch} from "
                    f"scratch; for COCO-pretrained fine-tuning put {model.name}.pt in {MODELS_DIR}/ or set "
                    "model.weights=/path/to/weights.pt")
        return None
    path = Path(model.weights).expanduser().resolve()
    if not path.is_file():
        raise XrayExpError(f"model.weights={model.weights}: file not found ({path}); put the .pt there, or use "
                           f"model.weights=auto to train {model.arch} from scratch")
    return path


def check_checkpoint(path: Path) -> None:
    """Load the weights as training will (Ultralytics' load_checkpoint), so a file that is not a checkpoint
    fails as one line before training instead of with a stack trace inside it. A .pt is a pickle: loading
    one runs code it holds, so use only weights you trust (README, Security)."""
    from ultralytics.nn.tasks import load_checkpoint

    try:
        load_checkpoint(path)
    except Exception as e:  # Ultralytics raises many kinds for a file that is not its checkpoint
        raise XrayExpError(f"model.weights={path}: not an Ultralytics checkpoint ({type(e).__name__}: "
                           f"{(str(e).splitlines() or [''])[0]})") from None
