"""The package as a user installs it: a wheel, installed away from the checkout, runs from any directory.

The wheel is built from a copy of the sources and installed into a fresh virtual environment; the project's
own environment lends it the dependencies through a .pth line (its editable-install hook is not run, so the
checkout cannot leak in). Every command runs in an empty directory, with no PYTHONPATH.
"""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT

SOURCES = ("pyproject.toml", "README.md", "conf", "xray_exp", "hydra_plugins")


def run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, src / name)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                 "-w", tmp / "dist", src], cwd=tmp)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp / "dist").glob("xray_exp-*.whl"))

    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip())
    # Dependencies from the project's environment: the folders on this interpreter's path as plain lines, so
    # that environment's .pth files (the editable install's finder among them) are not run again.
    lent = [p for p in sys.path if p and Path(p).is_dir() and Path(p).resolve() not in (ROOT, ROOT / "tests")]
    (site / "project_dependencies.pth").write_text("".join(f"{p}\n" for p in lent))
    done = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel], cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp / "work"
    work.mkdir()
    return {"wheel": wheel, "venv": venv, "python": python, "work": work}


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    probe = ("import sys, xray_exp, hydra_plugins.xray_exp_sweeper as s; "
             "print(xray_exp.__file__); print(s.__file__); print(xray_exp.CONF_DIR); print(*sys.path, sep='\\n')")
    proc = run([installed["python"], "-c", probe], cwd=installed["work"])
    assert proc.returncode == 0, proc.stderr
    package, plugin, conf, *path = proc.stdout.splitlines()
    for p in (package, plugin, conf):
        assert Path(p).is_relative_to(installed["venv"]), p
    assert (Path(conf) / "train.yaml").is_file()
    # Nothing of the checkout on the path but the environment that lends the dependencies.
    leaks = [p for p in path if p and Path(p).resolve().is_relative_to(ROOT)
             and not Path(p).resolve().is_relative_to(Path(sys.prefix).resolve())]
    assert not leaks


def test_the_wheel_holds_every_package_and_config_file(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for folder in ("xray_exp", "hydra_plugins/xray_exp_sweeper"):
        for module in (ROOT / folder).rglob("*.py"):  # a package missing from pyproject's list is missing here
            assert str(module.relative_to(ROOT)) in names, module
    for config in (ROOT / "conf").rglob("*.yaml"):
        assert f"xray_exp/conf/{config.relative_to(ROOT / 'conf')}" in names, config


def test_installed_compose_and_every_search_preset_from_an_empty_directory(installed, tmp_path):
    proc = run([installed["python"], "-m", "xray_exp", "experiment=demo", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data: data/synthetic_xray_demo" in proc.stdout and "model:" in proc.stdout
    presets = sorted(p.stem for p in (ROOT / "conf" / "search").glob("*.yaml"))
    assert presets
    for preset in presets:
        proc = run([installed["python"], "-m", "xray_exp", f"search={preset}", "--cfg", "hydra",
                    "-p", "hydra.sweeper.study_name"], cwd=tmp_path)
        assert proc.returncode == 0 and proc.stdout.strip(), (preset, proc.stderr[-3000:])
    assert not any(tmp_path.iterdir())  # composing writes nothing


@pytest.mark.slow
def test_installed_training_and_sweep_land_under_the_working_directory(installed, tiny_overrides):
    work = installed["work"]
    proc = run([installed["python"], "-m", "xray_exp", *tiny_overrides, "epochs=1"], cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((work / "outputs" / "runs").rglob("metrics.json"))
    assert len(runs) == 1 and (runs[0].parent / "weights" / "best.pt").is_file()

    # The console script of the wheel, with the study folder of search=path_a under this directory too.
    proc = run([installed["venv"] / "bin" / "xray-exp", "sweep", "--workers", "1", "search=path_a", *tiny_overrides,
                "epochs=1", "hydra.sweeper.n_trials=1", "hydra/sweeper/pruner=none"], cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:] + (work / "outputs/sweeps/path_a/worker-0.log").read_text()[-3000:]
    assert (work / "outputs" / "sweeps" / "path_a" / "0" / "metrics.json").is_file()
    assert (work / "outputs" / "sweeps" / "path_a" / "study.db").is_file()
