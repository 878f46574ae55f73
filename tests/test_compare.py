"""`xray-exp compare`: every run once, sorted by objective, numbers straight from metrics.json."""
import csv
import json
import shutil
from pathlib import Path

import cv2
import pytest

from helpers import run_module, tiny_args
from xray_exp.analysis.compare import build_rows, find_runs, read_overrides, sort_rows
from xray_exp.analysis.plots import param_importance

STUDY = "demo"


def _set_metrics(run: Path, **changes) -> None:
    record = json.loads((run / "metrics.json").read_text())
    record.update(changes)
    (run / "metrics.json").write_text(json.dumps(record))


def _add_overrides(run: Path, *extra: str) -> None:
    path = run / ".hydra" / "overrides.yaml"
    path.write_text(path.read_text() + "".join(f"- {o}\n" for o in extra))


def _make_study(db: Path) -> None:
    """A small real Optuna 2.10 study in SQLite, as the sweeper leaves one beside its job folders."""
    import optuna
    from optuna.distributions import CategoricalDistribution, LogUniformDistribution

    study = optuna.create_study(storage=f"sqlite:///{db}", study_name=STUDY, direction="maximize")
    dists = {"lr.lr0": LogUniformDistribution(1e-4, 1e-1), "optimizer.optimizer": CategoricalDistribution(["AdamW", "SGD"])}
    for i, (lr, opt) in enumerate([(1e-4, "SGD"), (3e-4, "AdamW"), (1e-3, "SGD"), (3e-3, "AdamW"), (1e-2, "SGD")]):
        study.add_trial(optuna.trial.create_trial(params={"lr.lr0": lr, "optimizer.optimizer": opt},
                                                  distributions=dists, value=0.1 * (i + 1)))
    study.add_trial(optuna.trial.create_trial(params={"lr.lr0": 5e-2, "optimizer.optimizer": "SGD"}, distributions=dists,
                                              state=optuna.trial.TrialState.PRUNED, intermediate_values={1: 0.05, 2: 0.07}))


@pytest.fixture(scope="module")
def root(synthetic_data, tmp_path_factory) -> Path:
    """Real run folders, built once: a single run, a 2-job grid multirun, and a sweep folder (its jobs
    copied from the multirun and given other states, plus an Optuna study), and one broken folder."""
    root = tmp_path_factory.mktemp("compare")
    tiny = tiny_args(synthetic_data)
    single = run_module("xray_exp", *tiny, f"hydra.run.dir={root / 'single'}")
    assert single.returncode == 0, single.stderr[-2000:]
    grid = run_module("xray_exp", "-m", *tiny, "lr.lr0=0.001,0.004", f"hydra.sweep.dir={root / 'multi'}")
    assert grid.returncode == 0, grid.stderr[-2000:]

    sweep = root / "sweeps" / STUDY
    for job, source in enumerate(["0", "1", "0", "1"]):
        shutil.copytree(root / "multi" / source, sweep / str(job))
        _add_overrides(sweep / str(job), f"trial.number={job}", f"hydra.sweeper.n_trials={job + 4}")
    _set_metrics(sweep / "0", value=0.5, metrics={"mAP50": 0.5, "mAP50-95": 0.25, "precision": 0.6, "recall": 0.4})
    _set_metrics(sweep / "1", value=0.2, stop_reason="pruned", epochs_completed=1)
    _set_metrics(sweep / "2", value=None, stop_reason="failed", error="RuntimeError: boom")
    (sweep / "3" / "metrics.json").unlink()  # still running: results.csv so far, no metrics.json
    lines = (sweep / "3" / "results.csv").read_text().splitlines()
    (sweep / "3" / "results.csv").write_text("\n".join(lines[:2]) + "\n")
    _make_study(sweep / f"{STUDY}.db")

    shutil.copytree(root / "single", root / "broken")
    (root / "broken" / "metrics.json").write_text('{"objective": "mAP50", "value": 0.')
    return root


EXPECTED = ["single", "multi/0", "multi/1", "sweeps/demo/0", "sweeps/demo/1", "sweeps/demo/2", "sweeps/demo/3"]


@pytest.fixture(scope="module")
def compared(root) -> tuple[object, list[dict], Path]:
    """`xray-exp compare ROOT --csv --markdown --plot`, once; the CSV read back with csv.DictReader."""
    out = root.parent / f"{root.name}-out"
    proc = run_module("xray_exp.cli", "compare", str(root), "--csv", str(out / "runs.csv"),
                      "--markdown", str(out / "runs.md"), "--plot", str(out / "plots"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    with (out / "runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return proc, rows, out


@pytest.mark.slow
def test_every_run_appears_once_and_the_broken_folder_is_reported_and_skipped(compared, root):
    proc, rows, _ = compared
    assert sorted(r["run"] for r in rows) == sorted(EXPECTED)
    skipped = [line for line in proc.stderr.splitlines() if "broken" in line]
    assert len(skipped) == 1 and "corrupted metrics.json" in skipped[0]
    assert "Traceback" not in proc.stderr
    # Overlapping paths (a folder and a run inside it) still list each run once.
    found = find_runs([root / "multi", root / "multi" / "0", root])
    assert len(found.runs) == len(EXPECTED)


@pytest.mark.slow
def test_rows_are_sorted_by_objective_high_to_low_with_empty_values_last(compared):
    _, rows, _ = compared
    values = [float(r["objective"]) if r["objective"] else None for r in rows]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=True)
    assert values[:2] == [0.5, 0.2]
    assert [r["run"] for r in rows[-2:]] == ["sweeps/demo/2", "sweeps/demo/3"]  # failed, unfinished: no value


@pytest.mark.slow
def test_numbers_equal_each_runs_metrics_json(compared, root):
    _, rows, _ = compared
    for row in rows:
        if row["stop_reason"] == "unfinished":
            continue
        record = json.loads((root / row["run"] / "metrics.json").read_text())
        expected = {"objective": record["value"], **record.get("metrics", {}),
                    "wall_s": record["wall_s"], "train_images_per_s": record.get("train_images_per_s")}
        for key, value in expected.items():
            assert (float(row[key]) if row[key] else None) == value, (row["run"], key)
        for key in ("best_epoch", "epochs_completed"):
            assert (int(row[key]) if row[key] else None) == record.get(key), (row["run"], key)
        assert row["stop_reason"] == record["stop_reason"]


@pytest.mark.slow
def test_failed_pruned_and_unfinished_runs_show_their_state(compared, root):
    _, rows, _ = compared
    by_run = {r["run"]: r for r in rows}
    assert by_run["sweeps/demo/1"]["stop_reason"] == "pruned"
    assert by_run["sweeps/demo/2"]["stop_reason"] == "failed"
    unfinished = by_run["sweeps/demo/3"]
    assert unfinished["stop_reason"] == "unfinished"
    assert unfinished["epochs_completed"] == "1"  # results.csv rows so far
    assert unfinished["objective"] == "" and unfinished["mAP50"] == ""


@pytest.mark.slow
def test_only_overrides_that_differ_are_columns(compared, root):
    _, rows, _ = compared
    metric_columns = ["objective", "mAP50", "mAP50-95", "precision", "recall", "best_epoch", "epochs_completed",
                      "stop_reason", "wall_s", "train_images_per_s"]
    assert list(rows[0]) == ["run", "lr.lr0", *metric_columns]  # not model, epochs, trial.*, hydra.*
    by_run = {r["run"]: r for r in rows}
    assert by_run["single"]["lr.lr0"] == ""  # not overridden there: Path A's default
    assert {by_run[f"multi/{j}"]["lr.lr0"] for j in "01"} == {"0.001", "0.004"}
    assert "trial.number" in (root / "sweeps/demo/0/.hydra/overrides.yaml").read_text()
    assert "trial.number" not in read_overrides(root / "sweeps/demo/0")

    one = find_runs([root / "single"]).runs
    columns, _ = build_rows(one)
    assert columns == ["run", *metric_columns]


@pytest.mark.slow
def test_markdown_and_plain_table_hold_the_same_rows_in_the_same_order(compared):
    proc, rows, out = compared
    md = (out / "runs.md").read_text().splitlines()
    assert len(md) == len(rows) + 2
    assert [line.split("|")[1].strip() for line in md[2:]] == [r["run"] for r in rows]
    # Piped stdout is plain text: a title, a header and one line per run, no box drawing.
    table = proc.stdout.splitlines()
    assert table[1].split()[:2] == ["run", "lr.lr0"]
    assert [line.split()[0] for line in table[2:]] == [r["run"] for r in rows]
    assert not any(ch in proc.stdout for ch in "┃│━")


@pytest.mark.slow
def test_plots_are_written_and_decode(compared):
    _, _, out = compared
    names = sorted(p.name for p in (out / "plots").iterdir())
    assert names == ["history_demo.png", "importance_demo.png", "objective_curves.png", "objective_vs_lr.lr0.png"]
    for name in names:
        image = cv2.imread(str(out / "plots" / name))
        assert image is not None and image.shape[0] > 0 and image.shape[1] > 0, name


@pytest.mark.slow
def test_sort_by_another_column_and_a_bad_sort_key(root, tmp_path):
    runs = find_runs([root / "multi", root / "single"]).runs
    _, rows = build_rows(runs, sort="wall_s", ascending=True)
    walls = [r["wall_s"] for r in rows]
    assert walls == sorted(walls)
    proc = run_module("xray_exp.cli", "compare", str(root / "single"), "--sort", "colour")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "colour" in proc.stderr


def test_no_runs_found_is_one_line_and_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "missing"):
        proc = run_module("xray_exp.cli", "compare", str(path))
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0], proc.stderr


def test_sort_keeps_numbers_numeric_and_empty_last():
    rows = [{"k": "0.01"}, {"k": None}, {"k": "0.1"}, {"k": "0.002"}]
    assert [r["k"] for r in sort_rows(rows, "k")] == ["0.1", "0.01", "0.002", None]
    assert [r["k"] for r in sort_rows(rows, "k", ascending=True)] == ["0.002", "0.01", "0.1", None]


def test_param_importance_scores_monotonic_unrelated_and_categorical_parameters():
    trials = [({"lr": lr, "seed": s, "opt": o}, v) for lr, s, o, v in [
        (1e-4, 3, "SGD", 0.10), (1e-3, 1, "SGD", 0.20), (1e-2, 4, "AdamW", 0.40), (1e-1, 2, "AdamW", 0.50)]]
    scores = param_importance(trials, categorical={"opt"})
    assert scores["lr"] == pytest.approx(1.0)  # perfectly monotonic
    assert scores["seed"] == pytest.approx(0.0)  # ranks 3,1,4,2 against 1,2,3,4: ρ = 0
    # η² = between-group / total sum of squares = (4 · 0.15²) / (2 · 0.2² + 2 · 0.1²) = 0.09 / 0.1
    assert scores["opt"] == pytest.approx(0.9 ** 0.5)
    assert list(scores) == ["lr", "opt", "seed"]


def test_long_drawn_override_values_read_as_4_significant_digits_but_csv_keeps_them():
    from xray_exp.analysis.compare import format_value, to_csv

    assert format_value("lr.lr0", "0.00184591819228225") == "0.001846"
    assert format_value("lr.lr0", "0.002") == "0.002"  # as typed
    assert format_value("model", "yolov8n") == "yolov8n"
    assert "0.00184591819228225" in to_csv(["lr.lr0"], [{"lr.lr0": "0.00184591819228225"}])


def test_sort_objective_is_the_metric_even_when_a_run_overrides_objective(tmp_path):
    """`objective=` on a command line is an override column of its own: `--sort objective` still sorts by
    the value, `--sort override:objective` by the override."""
    from xray_exp.analysis.compare import Run

    runs = [Run(tmp_path / name, overrides, {"objective": "mAP50", "value": value, "stop_reason": "completed"})
            for name, overrides, value in [("a", {"objective": "mAP50-95"}, 0.1), ("b", {}, 0.5),
                                           ("c", {"objective": "fitness"}, 0.3)]]
    columns, rows = build_rows(runs, sort="objective")
    assert "override:objective" in columns
    assert [r["objective"] for r in rows] == [0.5, 0.3, 0.1]
    _, rows = build_rows(runs, sort="override:objective", ascending=True)
    assert [r["override:objective"] for r in rows] == ["fitness", "mAP50-95", None]
