"""The guide's claims measured with seeds: the `claim` config group, `xray-exp claims` (resumable grid),
`xray-exp compare --by` (groups, intervals, verdicts, forest plot) and the mislabelled dataset behind
the labels_transposed claim."""
import json
import os

import cv2
import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from helpers import CONF, TINY_DATA, run_cli, tiny_args, tree_hashes
from xray_exp import claims
from xray_exp.analysis import groups
from xray_exp.analysis.compare import find_runs
from xray_exp.data.alignment import MISTAKE_NAMES, MISTAKES, check_alignment
from xray_exp.data.mislabel import ensure_mislabelled, make_mistake, mislabel_dataset, mislabelled_path, slug
from xray_exp.data.yolo import load_data_yaml, read_labels
from xray_exp.errors import XrayExpError


def _flat(node, prefix=""):
    if isinstance(node, dict):
        return {k2: v2 for k, v in node.items() for k2, v2 in _flat(v, f"{prefix}{k}.").items()}
    return {prefix[:-1]: node}


def _compose(*overrides):
    # Hydra initialised per call, not for the module (conftest's compose_train): xray_exp.claims
    # composes too, and Hydra allows one initialisation at a time.
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("train", overrides=list(overrides))


@pytest.fixture(scope="module")
def settings():
    """settings(*overrides) -> the composed config, resolved and flattened, without the run-length node."""
    def make(*overrides):
        flat = _flat(OmegaConf.to_container(_compose(*overrides), resolve=True))
        return {k: v for k, v in flat.items() if not k.startswith("claim.")}
    return make


def _changed(a: dict, b: dict) -> set[str]:
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


# ---- the claim group --------------------------------------------------------------------------------

SINGLE_CHANGES = {
    "optimizer": {"optimizer.optimizer", "lr.lr0"},
    "sgd": {"optimizer.optimizer"},
    "lr": {"optimizer.optimizer", "lr.lr0"},
    "batch": {"batch"},
    "warmup": {"lr.warmup_epochs"},
    "augmentation": {"augmentation.degrees", "augmentation.mosaic", "augmentation.mixup"},
    "dropout": {"ultralytics.dropout"},
    "schedule": {"epochs", "patience"},
    "labels_transposed": {"dataset.mislabel"},
}


def test_no_claim_by_default_changes_nothing():
    cfg = _compose()
    assert "claim" not in cfg  # the root defaults (Path A minus dropout), as before the group existed
    assert (cfg.epochs, cfg.batch, cfg.patience, cfg.optimizer.optimizer, cfg.lr.lr0, cfg.augmentation.mosaic,
            cfg.ultralytics) == (200, 8, 75, "AdamW", 0.002, 0.8, {})


def test_the_baseline_claim_is_the_guides_old_column_as_experiment_baseline_has_it(settings):
    assert settings("claim=baseline") == settings("experiment=baseline")


@pytest.mark.parametrize("claim, keys", SINGLE_CHANGES.items())
def test_each_claim_is_the_baseline_plus_its_one_change(settings, claim, keys):
    assert _changed(settings(f"claim={claim}"), settings("claim=baseline")) == keys


def test_the_data_claim_changes_the_dataset_only(settings):
    changed = _changed(settings("claim=data"), settings("claim=baseline"))
    assert changed and all(k.startswith("dataset.") for k in changed)
    assert settings("claim=data")["dataset.name"] == "merged"


def test_path_a_is_every_hyperparameter_claim_together(settings):
    together = settings("claim=[optimizer,batch,warmup,augmentation,dropout,schedule]")
    assert settings("claim=path_a") == together
    # The guide's column as written keeps hue jitter; that is all that separates it from experiment=path_a.
    assert _changed(together, settings("experiment=path_a")) == {"augmentation.hsv_h"}


@pytest.mark.parametrize("order", ["[batch,augmentation]", "[augmentation,batch]"])
def test_a_list_of_claims_keeps_every_change(settings, order):
    # Each option selects the baseline by an override, not an include: an include would re-apply it
    # after the first claim and undo that claim's change.
    assert _changed(settings(f"claim={order}"), settings("claim=baseline")) == \
        SINGLE_CHANGES["batch"] | SINGLE_CHANGES["augmentation"]


def test_claims_apply_after_an_experiment_preset(settings):
    # The preset picks data, model and image size; the claim then sets the guide's settings.
    cfg, demo = settings("experiment=demo", "claim=batch"), settings("experiment=demo")
    assert (cfg["dataset.name"], cfg["model.name"], cfg["imgsz"]) == ("synthetic", "yolov8n", demo["imgsz"])
    assert (cfg["batch"], cfg["epochs"], cfg["optimizer.optimizer"]) == (8, 100, "auto")


def test_run_lengths_scale_both_columns(settings):
    short = ("++claim.epochs=[6,12]", "++claim.patience=[3,5]")
    assert (settings("claim=baseline", *short)["epochs"], settings("claim=baseline", *short)["patience"]) == (6, 3)
    assert (settings("claim=schedule", *short)["epochs"], settings("claim=schedule", *short)["patience"]) == (12, 5)


def test_overrides_that_erase_a_claim_are_refused_or_left_out(synthetic_data):
    demo = ["experiment=demo", f"dataset.data={synthetic_data}"]
    with pytest.raises(XrayExpError, match="claim schedule: the overrides set epochs.*erases.*claim.epochs"):
        claims.select([("schedule",)], [*demo, "epochs=8"])
    with pytest.raises(XrayExpError, match="claim batch: the overrides set batch for every claim"):
        claims.select([("batch",)], [*demo, "batch=16"])
    # A preset's dataset erases the data claim's (its data.yaml stays the preset's).
    with pytest.raises(XrayExpError, match="claim data: .*(missing|dataset.data)"):
        claims.select([("data",)], demo)
    chosen, notes = claims.select(None, [*demo, "epochs=8"])
    assert ("schedule",) not in chosen and ("path_a",) not in chosen and ("batch",) in chosen
    assert any(n.startswith("claim schedule left out") for n in notes)
    assert claims.select([("schedule",)], [*demo, "++claim.epochs=[2,4]"])[0] == [("baseline",), ("schedule",)]


def test_claim_names_parse_and_read_back_from_overrides():
    assert claims.parse_claims("batch, batch+augmentation,batch") == [("batch",), ("batch", "augmentation")]
    job = claims.Job(("batch", "augmentation"), 1)
    assert (job.value, job.name) == ("[batch,augmentation]", "claim=[batch,augmentation],seed=1")
    assert claims.parse_value(job.value) == job.claim
    with pytest.raises(XrayExpError, match="unknown claim 'bogus'; choose from baseline, optimizer"):
        claims.parse_claims("batch+bogus")


def test_a_fresh_folder_is_one_grid_a_partial_one_only_its_missing_jobs():
    a, b, c = ("baseline",), ("batch",), ("batch", "augmentation")
    fresh = claims.plan([a, b, c], 2, claims.State({}, {}))
    assert claims.batches(fresh, workers=1) == [([a, b, c], [0, 1])]
    done = claims.State({claims.Job(a, 0): None, claims.Job(a, 1): None, claims.Job(b, 0): None}, {})
    left = claims.plan([a, b, c], 2, done)
    assert left == [claims.Job(b, 1), claims.Job(c, 0), claims.Job(c, 1)]
    assert claims.batches(left, workers=1) == [([b], [1]), ([c], [0, 1])]
    assert claims.batches(left, workers=2) == [([b], [1]), ([c], [0]), ([c], [1])]
    assert claims.batches(fresh, workers=2) == [([a, c], [0, 1]), ([b], [0, 1])]


# ---- the mislabelled dataset ------------------------------------------------------------------------

@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_alignments_correction_undoes_each_committed_mistake(mistake):
    boxes = np.array([[0.3, 0.6, 0.2, 0.1], [0.7, 0.2, 0.12, 0.3]])
    committed = make_mistake(mistake)(boxes)
    assert not np.allclose(committed, boxes)
    assert np.allclose(mistake.undo(committed), boxes)


def test_a_transposed_copy_moves_every_box_links_the_images_and_leaves_the_source_alone(synthetic_data, tmp_path):
    src = load_data_yaml(synthetic_data)
    before = tree_hashes(src.root, mtimes=True)
    result = mislabel_dataset(synthetic_data, "transposed", tmp_path / "t")
    assert tree_hashes(src.root, mtimes=True) == before
    copy = load_data_yaml(result.data_yaml)
    assert copy.names == src.names and result.dropped == 0
    pairs = [(s, c) for split in ("train", "val") for s, c in zip(src.samples(split), copy.samples(split))]
    assert len(pairs) == TINY_DATA["n_train"] + TINY_DATA["n_val"] == result.images
    for s, c in pairs:
        assert os.path.samefile(s.image, c.image)  # a hard link, not a copy
        want = [(lb.cls, (lb.box()[1], lb.box()[0], lb.box()[3], lb.box()[2])) for lb in read_labels(s.label)]
        got = [(lb.cls, lb.box()) for lb in read_labels(c.label)]
        assert [g[0] for g in got] == [w[0] for w in want]
        assert np.allclose([g[1] for g in got], [w[1] for w in want], atol=1e-6)
    # The audit's alignment check names the mistake that was committed.
    suspicions = check_alignment(result.data_yaml).suspicions
    assert suspicions and suspicions[0].mistake.name == "transposed"


def test_the_copy_is_built_on_first_use_reused_and_refused_once_the_source_changes(synthetic_data, tmp_path):
    import shutil

    src = shutil.copytree(load_data_yaml(synthetic_data).yaml_path.parent, tmp_path / "synth")
    target = ensure_mislabelled(src / "data.yaml", "transposed")
    assert target == mislabelled_path(src / "data.yaml", "transposed") == tmp_path / "synth_transposed" / "data.yaml"
    built = target.stat().st_mtime_ns
    assert ensure_mislabelled(src / "data.yaml", "transposed").stat().st_mtime_ns == built
    label = next((src / "labels" / "train").iterdir())
    label.write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(XrayExpError, match="made from other labels.*delete that folder"):
        ensure_mislabelled(src / "data.yaml", "transposed")


def test_mislabel_cli_makes_the_copy_and_names_a_bad_mistake(synthetic_data, tmp_path):
    proc = run_cli("data", "mislabel", synthetic_data, "--mistake", "flipped-vertically", "--out", tmp_path / "f")
    assert proc.returncode == 0, proc.stderr
    assert "mislabel" in yaml.safe_load((tmp_path / "f" / "data.yaml").read_text())
    bad = run_cli("data", "mislabel", synthetic_data, "--mistake", "sideways", "--out", tmp_path / "g")
    assert bad.returncode == 2 and not (tmp_path / "g").exists()
    assert bad.stderr.strip().splitlines() == [
        f"xray-exp: error: unknown mistake 'sideways'; choose from {', '.join(map(slug, MISTAKE_NAMES))}"]


# ---- compare --by on run folders with known values ----------------------------------------------------

def _fake_run(root, claim, seed, value, curve):
    run = root / f"claim={claim},seed={seed}"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(f"- claim={claim}\n- seed={seed}\n")
    (run / ".hydra" / "config.yaml").write_text("monitor:\n  milestones: [[25, 0.12], [50, 0.25]]\n")
    (run / "metrics.json").write_text(json.dumps({"objective": "mAP50", "value": value, "stop_reason": "completed",
                                                  "metrics": {"mAP50": value, "mAP50-95": value / 2}}))
    rows = "".join(f"{e},{v}\n" for e, v in enumerate(curve, 1))
    (run / "results.csv").write_text("epoch,metrics/mAP50(B)\n" + rows)


@pytest.fixture
def known_runs(tmp_path):
    for seed, (v, curve) in enumerate([(0.30, [0.05, 0.13, 0.30]), (0.31, [0.12, 0.2, 0.31]), (0.29, [0.0, 0.1, 0.11])]):
        _fake_run(tmp_path, "baseline", seed, v, curve)
    for seed, v in enumerate([0.40, 0.41, 0.39]):
        _fake_run(tmp_path, "path_a", seed, v, [0.26, v])
    _fake_run(tmp_path, "batch", 0, 0.2, [0.2])
    return tmp_path


def test_groups_measure_each_value_against_the_baseline(known_runs):
    grouped, ref = groups.group_runs(find_runs([known_runs]).runs, "claim")
    assert ref == "baseline" and [g.value for g in grouped] == ["baseline", "batch", "path_a"]
    base, batch, path_a = grouped
    assert base.effect is None and base.stats.n == 3 and base.stats.mean == pytest.approx(0.30)
    assert path_a.effect.verdict == "helps" and path_a.effect.ci[0] < 0.10 < path_a.effect.ci[1]
    assert batch.effect.ci is None and batch.effect.verdict.startswith("no interval (n=1")
    assert base.milestone_epochs == {0.12: [2, 1, None], 0.25: [3, 3, None]}
    columns, rows = groups.display_rows(grouped, "claim", ref)
    assert rows[0]["verdict"] == "reference" and rows[0]["epochs to 0.12"] == "1.5 (2/3)"
    assert rows[2]["epochs to 0.25"] == "1.0 (3/3)" and rows[2]["verdict"] == "helps"


def test_any_key_groups_and_a_missing_reference_is_named(known_runs):
    grouped, ref = groups.group_runs(find_runs([known_runs]).runs, "seed", reference="1")
    assert ref == "1" and [g.value for g in grouped] == ["1", "0", "2"]
    proc = run_cli("compare", known_runs, "--by", "claim", "--reference", "sgd")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("xray-exp: error: --reference sgd: no run has claim=sgd; "
                                   "values: baseline, batch, path_a")


# ---- end to end -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_claims_run_with_seeds_compare_by_claim_and_resume(synthetic_data, tmp_path):
    out = tmp_path / "claims"
    # The tiny settings, minus the run length and batch a claim sets (those would erase claims).
    tiny = [a for a in tiny_args(synthetic_data) if not a.startswith(("epochs=", "batch="))]
    args = ["claims", "--seeds", "2", "--claims", "baseline,batch,labels_transposed", "--out", out,
            *tiny, "++claim.epochs=[1,2]", "+ultralytics.plots=false"]
    first = run_cli(*args, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    names = {f"claim={c},seed={s}" for c in ("baseline", "batch", "labels_transposed") for s in (0, 1)}
    assert {p.name for p in out.iterdir() if p.is_dir()} == names
    assert all(json.loads((out / n / "metrics.json").read_text())["stop_reason"] == "completed" for n in names)
    assert "6 runs: 6 ran now, 6 finished" in first.stdout
    assert (synthetic_data.parent.with_name(synthetic_data.parent.name + "_transposed") / "data.yaml").is_file()

    table = run_cli("compare", out, "--by", "claim", "--markdown", out / "claims.md", "--plot", out / "plots")
    assert table.returncode == 0, table.stderr
    rows = [line for line in (out / "claims.md").read_text().splitlines()[2:] if line.startswith("|")]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert [(c[0], c[1]) for c in cells] == [("baseline", "2"), ("batch", "2"), ("labels_transposed", "2")]
    assert cells[0][7] == "reference"
    assert cv2.imread(str(out / "plots" / "forest_claim.png")) is not None

    csvs = {n: (out / n / "results.csv").stat().st_mtime_ns for n in names}
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "6 runs: 0 ran now, 6 finished" in again.stdout
    assert {n: (out / n / "results.csv").stat().st_mtime_ns for n in names} == csvs

    # A failed run and one stopped by Ctrl-C (its metrics.json holds only the best so far) are redone in
    # clean folders; their old folders are kept aside; nothing else trains.
    redo = {out / "claim=batch,seed=1": "failed", out / "claim=baseline,seed=0": "interrupted"}
    for folder, reason in redo.items():
        record = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps({**record, "stop_reason": reason}))
    third = run_cli(*args)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "6 runs: 2 ran now, 6 finished" in third.stdout
    assert len(list((out / ".retried").iterdir())) == 2
    for folder in redo:
        assert len((folder / "results.csv").read_text().splitlines()) == 2  # header + 1 epoch, not appended
    kept = names - {f.name for f in redo}
    assert {n: (out / n / "results.csv").stat().st_mtime_ns for n in kept} == {n: csvs[n] for n in kept}
