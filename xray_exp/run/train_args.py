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
    return kwargs


def check_override_keys(overrides: list[str]) -> None:
    """Catch typos in command-line keys before Hydra composes (its struct error suggests nothing).

    `lr.lr00=1` -> "unknown key 'lr.lr00'; did you mean 'lr0'?". Only keys we can judge cheaply are
    checked: leaves of the Ultralytics groups and root keys of conf/train.yaml. Anything else is left
    to Hydra, whose own error is clear enough for config-group names.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
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
