"""Every option of every config group and every preset composes, with the values the guide gives."""
import pytest

from xray_exp.run import train_args
from xray_exp.errors import XrayExpError


@pytest.fixture(scope="module")
def make(compose_train):
    return compose_train


def test_defaults_are_path_a_with_yolov8x_on_luggage_xray(make):
    cfg = make()
    assert (cfg.optimizer.optimizer, cfg.lr.lr0, cfg.lr.warmup_epochs) == ("AdamW", 0.002, 5.0)
    assert (cfg.epochs, cfg.batch, cfg.patience) == (200, 8, 75)
    assert (cfg.augmentation.degrees, cfg.augmentation.mosaic, cfg.augmentation.mixup) == (10.0, 0.8, 0.0)
    assert cfg.model.arch == "yolov8x.yaml" and cfg.model.weights == "auto"
    assert cfg.dataset.name == "luggage_xray" and len(cfg.dataset.names) == 12
    assert cfg.objective == "mAP50"
    assert cfg.monitor.gates == [[100, 0.35]]
    assert [m[0] for m in cfg.monitor.milestones] == [25, 50, 100, 150, 200]


@pytest.mark.parametrize("option, expected", [
    ("adamw", ("AdamW", 0.937)), ("sgd", ("SGD", 0.937)), ("auto", ("auto", 0.937))])
def test_optimizer_options(make, option, expected):
    cfg = make(f"optimizer={option}")
    assert (cfg.optimizer.optimizer, cfg.optimizer.momentum) == expected


@pytest.mark.parametrize("option, lr0, warmup", [("path_a", 0.002, 5.0), ("baseline", 0.01, 3.0)])
def test_lr_options(make, option, lr0, warmup):
    cfg = make(f"lr={option}")
    assert (cfg.lr.lr0, cfg.lr.warmup_epochs, cfg.lr.lrf) == (lr0, warmup, 0.01)


@pytest.mark.parametrize("option, degrees, mosaic, mixup, hsv_h, flipud", [
    ("moderate", 10.0, 0.8, 0.0, 0.0, 0.0),
    ("aggressive", 15.0, 1.0, 0.1, 0.015, 0.0),
    ("xray", 10.0, 1.0, 0.0, 0.0, 0.5),
    ("none", 0.0, 0.0, 0.0, 0.0, 0.0)])
def test_augmentation_options(make, option, degrees, mosaic, mixup, hsv_h, flipud):
    a = make(f"augmentation={option}").augmentation
    assert (a.degrees, a.mosaic, a.mixup, a.hsv_h, a.flipud) == (degrees, mosaic, mixup, hsv_h, flipud)


@pytest.mark.parametrize("option, data, build", [
    ("luggage_xray", "data/luggage_xray_yolo/data.yaml", None),
    ("cargoxray", "data/cargoxray_yolo/data.yaml", None),
    ("merged", "data/merged_xray_yolo/data.yaml", "merge"),
    ("synthetic", "data/synthetic_xray/data.yaml", "synthetic")])
def test_dataset_options(make, option, data, build):
    ds = make(f"dataset={option}").dataset
    assert (ds.name, ds.data, ds.build) == (option, data, build)
    assert ds.hint  # a missing dataset's error tells the user how to build it


def test_dataset_class_counts_match_the_guide(make):
    assert len(make("dataset=cargoxray").dataset.names) == 16
    assert make("dataset=merged").dataset.sources == ["data/luggage_xray_yolo/data.yaml", "data/cargoxray_yolo/data.yaml"]
    synth = make("dataset=synthetic").dataset
    assert (synth.n_train, synth.n_val, synth.imgsz, synth.seed) == (400, 100, 320, 0)


@pytest.mark.parametrize("name", [f"{fam}{s}" for fam in ("yolov8", "yolo11") for s in "nsmlx"])
def test_model_options(make, name):
    m = make(f"model={name}").model
    assert (m.name, m.arch, m.weights) == (name, f"{name}.yaml", "auto")


def test_experiment_baseline_is_the_guides_old_column(make):
    cfg = make("experiment=baseline")
    assert cfg.optimizer.optimizer == "auto" and cfg.lr.lr0 == 0.01 and cfg.lr.warmup_epochs == 3.0
    assert (cfg.epochs, cfg.batch, cfg.patience) == (100, 16, 50)
    assert (cfg.augmentation.degrees, cfg.augmentation.mosaic, cfg.augmentation.mixup) == (15.0, 1.0, 0.1)


def test_experiment_path_a_is_the_guides_new_column_including_dropout(make):
    cfg = make("experiment=path_a")
    assert cfg.optimizer.optimizer == "AdamW" and cfg.lr.lr0 == 0.002 and cfg.lr.warmup_epochs == 5.0
    assert (cfg.epochs, cfg.batch, cfg.patience) == (200, 8, 75)
    assert (cfg.augmentation.degrees, cfg.augmentation.mosaic, cfg.augmentation.mixup) == (10.0, 0.8, 0.0)
    assert cfg.ultralytics.dropout == 0.1


def test_experiment_path_b_is_path_a_on_merged_data(make):
    a, b = make("experiment=path_a"), make("experiment=path_b")
    assert b.dataset.name == "merged"
    for key in ("optimizer", "lr", "augmentation", "ultralytics", "epochs", "batch", "patience"):
        assert a[key] == b[key], key


def test_experiment_demo_is_small_and_on_synthetic_data(make):
    cfg = make("experiment=demo")
    assert (cfg.dataset.name, cfg.model.name, cfg.device, cfg.imgsz) == ("synthetic", "yolov8n", "cpu", 96)
    assert cfg.dataset.data == "data/synthetic_xray_demo_240x96/data.yaml"  # not the default synthetic folder
    assert cfg.epochs <= 10 and cfg.monitor.gates == [] and cfg.monitor.scale_to_epochs


def test_command_line_override_wins_over_preset(make):
    cfg = make("experiment=path_a", "lr.lr0=0.005", "augmentation.mosaic=0.5")
    assert (cfg.lr.lr0, cfg.augmentation.mosaic) == (0.005, 0.5)


@pytest.mark.parametrize("experiment", ["baseline", "path_a", "path_b", "demo"])
def test_every_preset_flattens_to_known_ultralytics_keys(make, experiment):
    kwargs = train_args.train_kwargs(make(f"experiment={experiment}"))
    assert set(kwargs) <= train_args.ultralytics_keys()
    assert kwargs["lr0"] == make(f"experiment={experiment}").lr.lr0


def test_unknown_ultralytics_key_suggests_the_closest(make):
    with pytest.raises(XrayExpError, match="did you mean 'dropout'"):
        train_args.train_kwargs(make("+ultralytics.dropuot=0.1"))


def test_same_key_in_two_places_is_refused(make):
    with pytest.raises(XrayExpError, match="'ultralytics.lr0' sets the same Ultralytics key as 'lr.lr0'"):
        train_args.train_kwargs(make("+ultralytics.lr0=0.1"))


@pytest.mark.parametrize("override, suggestion", [
    ("lr.lr00=1", "lr0"), ("augmentation.mosiac=0.5", "mosaic"), ("epoch=3", "epochs")])
def test_command_line_typos_suggest_the_key(override, suggestion):
    with pytest.raises(XrayExpError, match=f"did you mean '{suggestion}'"):
        train_args.check_override_keys([override])


def test_command_line_check_accepts_valid_and_sweep_syntax():
    train_args.check_override_keys(["lr.lr0=0.001,0.002", "optimizer=sgd", "+ultralytics.cos_lr=true",
                                  "hydra.run.dir=x", "monitor.gates=[[1,0.5]]", "dataset.n_train=3"])
