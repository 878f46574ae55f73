"""The `dataset` config group -> the path of a data.yaml that exists, built on first use when we can."""
import logging
from pathlib import Path

from omegaconf import DictConfig

from xray_exp.errors import XrayExpError

log = logging.getLogger(__name__)


def resolve_data_yaml(ds: DictConfig) -> Path:
    """The data.yaml to train on: the dataset's own, or with `dataset.mislabel: <mistake>` (the
    labels_transposed claim) its copy with that mistake committed on every box, built on first use."""
    data = _dataset_yaml(ds)
    if ds.get("mislabel"):
        from xray_exp.data.mislabel import ensure_mislabelled

        return ensure_mislabelled(data, ds.mislabel)
    return data


def _dataset_yaml(ds: DictConfig) -> Path:
    """Return the absolute data.yaml of dataset group `ds`, building synthetic/merged data if missing.

    Relative paths are taken from the working directory (Hydra does not chdir), so `data/...` means the
    project's data/ folder when run from the project root.
    """
    data = Path(ds.data).expanduser().resolve()
    if ds.get("build") == "synthetic":
        from xray_exp.data.synthetic import ensure_dataset

        return ensure_dataset(data.parent, n_train=ds.n_train, n_val=ds.n_val, n_test=ds.n_test,
                              imgsz=ds.imgsz, seed=ds.seed)
    if data.is_file():
        return data
    if ds.get("build") == "merge":
        missing = [s for s in ds.sources if not Path(s).expanduser().is_file()]
        if not missing:
            from xray_exp.data.merge import merge_datasets

            log.info(f"dataset '{ds.name}': building {data.parent} from {', '.join(ds.sources)}")
            merge_datasets([Path(s) for s in ds.sources], data.parent)
            return data
        raise XrayExpError(f"dataset '{ds.name}': {data} not found and its source {missing[0]} is missing; "
                           f"build the sources first, then: {ds.hint}")
    raise XrayExpError(f"dataset '{ds.name}': {data} not found; build it with: {ds.hint}")
