"""Composed config -> the keyword arguments of `YOLO(...).train()`, with unknown keys caught early.

Group leaves already carry Ultralytics' own key names (docs/architecture.md), so flattening needs no renaming
table: the groups below plus the root run settings and the free-form `ultralytics:` mapping.
"""
import difflib
from typing import Any

from omegaconf import DictConfig, OmegaConf

from xray_exp import CONF_DIR
from xray_exp.errors import XrayExpError

# Groups whose leaves are Ultralytics train keys, in the order they are flattened.
ULTRALYTICS_GROUPS = ("optimizer", "lr", "augmentation", "ultralytics")
RUN_KEYS = ("epochs", "batch", "imgsz", "patience", "device", "workers", "seed", "deterministic", "cache", "amp")
OBJECTIVES = ("mAP50", "mAP50-95", "fitness")
MIN_IMGSZ = 32  # Ultralytics' floor for a training size (its largest stride): anything below becomes 32
ROOT_CONFIG = CONF_DIR / "train.yaml"


def ultralytics_keys() -> set[str]:
    """Every key Ultralytics' default config knows (its own source of truth for train arguments)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return set(DEFAULT_CFG_DICT)


def _suggest(word: str, candidates: set[str] | list[str]) -> str:
    close = difflib.get_close_matches(word, sorted(candidates), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def unknown_key_error(path: str, leaf: str, candidates: set[str] | list[str]) -> XrayExpError:
    return XrayExpError(f"unknown key '{path}'{_suggest(leaf, candidates)}")


def train_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """Flatten run settings and Ultralytics groups; every key must be one Ultralytics knows."""
    known = ultralytics_keys()
    kwargs: dict[str, Any] = {k: cfg[k] for k in RUN_KEYS}
    origin = {k: k for k in RUN_KEYS}
    for group in ULTRALYTICS_GROUPS:
        node = cfg.get(group)
        leaves = OmegaConf.to_container(node, resolve=True) if node is not None else {}
        for key, value in leaves.items():
            if key not in known:
                raise unknown_key_error(f"{group}.{key}", key, known)
            if key in kwargs:
                raise XrayExpError(f"'{group}.{key}' sets the same Ultralytics key as '{origin[key]}'; set it in one place")
            kwargs[key] = value
            origin[key] = f"{group}.{key}"
    if cfg.objective not in OBJECTIVES:
        raise XrayExpError(f"objective={cfg.objective} is not one of {', '.join(OBJECTIVES)}")
    _check_values(kwargs, origin)
    return kwargs


def _check_values(kwargs: dict[str, Any], origin: dict[str, str]) -> None:
    """Ultralytics' own type and range checks, key by key so the error names our key (Ultralytics would
    raise the same inside training, after the run folder was set up); then batch and imgsz, which it
    takes without complaint and silently replaces (batch=-3 becomes AutoBatch, imgsz=0 becomes 32)."""
    from ultralytics.cfg import check_cfg

    for key, value in kwargs.items():
        try:
            check_cfg({key: value})
        except (TypeError, ValueError) as e:
            raise XrayExpError(f"{origin[key]}: {e}") from None
    batch, imgsz = kwargs["batch"], kwargs["imgsz"]
    if isinstance(batch, bool) or not isinstance(batch, (int, float)) or not (
            batch == -1 or 0 < batch < 1 or (batch >= 1 and float(batch).is_integer())):
        raise XrayExpError(f"{origin['batch']}={batch}: use a whole number of images >= 1, -1 for Ultralytics' "
                           "AutoBatch, or a fraction 0-1 of GPU memory")
    if isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < MIN_IMGSZ:
        raise XrayExpError(f"{origin['imgsz']}={imgsz}: training takes one square size in pixels, at least "
                           f"{MIN_IMGSZ} (Ultralytics rounds it up to a multiple of 32), e.g. imgsz=640")


def check_device(device) -> None:
    """The device Ultralytics would refuse (e.g. cuda:0 without CUDA), as one line before any work starts.

    Uses Ultralytics' own select_device, which training, eval and predict call later with the same value.
    """
    from ultralytics.utils.torch_utils import select_device

    try:
        select_device(device, verbose=False)
    except ValueError as e:
        import torch

        raise XrayExpError(f"device={device}: {str(e).splitlines()[0]} (torch sees {torch.cuda.device_count()} "
                           "CUDA devices)") from None


def check_override_keys(overrides: list[str]) -> None:
    """Catch typos in command-line keys before Hydra composes (its struct error suggests nothing).

    `lr.lr00=1` -> "unknown key 'lr.lr00'; did you mean 'lr0'?". Only keys we can judge cheaply are
    checked: leaves of the Ultralytics groups and root keys of conf/train.yaml. Anything else is left
    to Hydra, whose own error is clear enough for config-group names.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
    except OverrideParseException as e:
        # Hydra's message: "Error parsing override '<it>'", the parser's complaint, a link to the grammar.
        lines = str(e).splitlines()
        raise XrayExpError(f"{lines[0]}: {lines[1] if len(lines) > 1 else ''} (values with brackets, commas or "
                           "quotes need quoting: key='value')") from None
    root = OmegaConf.load(ROOT_CONFIG)
    root_keys = {k for k in root if k != "defaults"} | {
        entry if isinstance(entry, str) else next(iter(entry)) for entry in root.defaults}
    known = None
    for override in parsed:
        key = override.key_or_group
        if override.is_delete() or key.startswith("hydra") or key.startswith("/"):
            continue
        head, _, leaf = key.partition(".")
        if head in ULTRALYTICS_GROUPS and leaf and "." not in leaf:
            known = known or ultralytics_keys()
            if leaf not in known:
                raise unknown_key_error(key, leaf, known)
        elif not override.is_add() and head not in root_keys:
            raise unknown_key_error(key, head, root_keys)
