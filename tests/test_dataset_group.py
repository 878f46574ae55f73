"""The dataset config group resolves to a data.yaml, building synthetic and merged data on first use."""
import pytest
import yaml

from xray_exp.data.synthetic import CLASS_NAMES, build_dataset
from xray_exp.run.data_yaml import resolve_data_yaml
from xray_exp.errors import XrayExpError


@pytest.fixture(scope="module")
def make(compose_train):
    return compose_train


def test_synthetic_is_built_on_first_use_then_reused(make, tmp_path):
    ds = make("dataset=synthetic", f"dataset.data={tmp_path}/synth/data.yaml", "dataset.n_train=4",
              "dataset.n_val=2", "dataset.imgsz=64").dataset
    data_yaml = resolve_data_yaml(ds)
    assert data_yaml == tmp_path / "synth" / "data.yaml"
    assert len(list((tmp_path / "synth" / "images" / "train").iterdir())) == 4
    built = data_yaml.stat().st_mtime_ns
    assert resolve_data_yaml(ds) == data_yaml and data_yaml.stat().st_mtime_ns == built  # not rebuilt


def test_synthetic_with_other_sizes_is_refused_not_mixed(make, tmp_path):
    args = ["dataset=synthetic", f"dataset.data={tmp_path}/synth/data.yaml", "dataset.n_val=2", "dataset.imgsz=64"]
    resolve_data_yaml(make(*args, "dataset.n_train=4").dataset)
    with pytest.raises(XrayExpError, match="not the requested .*: ask for the parameters it was built with, or build this one in another folder"):
        resolve_data_yaml(make(*args, "dataset.n_train=5").dataset)


def _tiny_cargo(root):
    """A 2-class dataset whose 'knife' clashes by name with the synthetic classes."""
    for split in ("train", "valid"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        (root / split / "images" / f"{split}_a.jpg").write_bytes(b"\xff\xd8placeholder")
        (root / split / "labels" / f"{split}_a.txt").write_text("1 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.1 0.1\n")
    (root / "data.yaml").write_text(yaml.safe_dump(
        {"train": "train/images", "val": "valid/images", "nc": 2, "names": ["bags", "Knife"]}))
    return root / "data.yaml"


def test_merged_is_built_on_first_use_from_its_sources(make, tmp_path):
    first = build_dataset(tmp_path / "synth", n_train=3, n_val=2, imgsz=64, seed=0)
    second = _tiny_cargo(tmp_path / "cargo")
    ds = make("dataset=merged", f"dataset.data={tmp_path}/merged/data.yaml",
              f"dataset.sources=[{first},{second}]").dataset
    data_yaml = resolve_data_yaml(ds)
    merged = yaml.safe_load(data_yaml.read_text())
    assert merged["names"] == [*CLASS_NAMES, "bags"]  # 'Knife' is the synthetic 'knife' (case-insensitive)
    assert len(list((tmp_path / "merged" / "images" / "train").iterdir())) == 3 + 1
    assert len(list((tmp_path / "merged" / "images" / "val").iterdir())) == 2 + 1


def test_merged_with_a_missing_source_says_which_and_how(make, tmp_path):
    ds = make("dataset=merged", f"dataset.data={tmp_path}/merged/data.yaml",
              f"dataset.sources=[{tmp_path}/nowhere/data.yaml]").dataset
    with pytest.raises(XrayExpError, match=f"its source {tmp_path}/nowhere/data.yaml is missing.*make data-merged"):
        resolve_data_yaml(ds)
    assert not (tmp_path / "merged").exists()


def test_a_dataset_you_provide_must_exist(make, tmp_path):
    ds = make("dataset=cargoxray", f"dataset.data={tmp_path}/cargo/data.yaml").dataset
    with pytest.raises(XrayExpError, match="not found; build it with: xray-exp data convert --format coco"):
        resolve_data_yaml(ds)
