"""Shared test fixtures: one tiny synthetic dataset per session and the CLI as a real subprocess."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"

def tree_hashes(root: Path) -> dict[str, str]:
    """Relative path -> content hash of every file under root (to show a tree was not touched)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def compose_train():
    """compose_train(*overrides) -> the composed conf/train.yaml, as `python -m xray_exp` would see it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        yield lambda *overrides: compose("train", overrides=list(overrides))


# Small enough for seconds per training on 2 CPU cores, big enough for Ultralytics to run real epochs.
TINY_DATA = {"n_train": 32, "n_val": 16, "n_test": 0, "imgsz": 64, "seed": 0}


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """data.yaml of a tiny synthetic dataset, built once per test session."""
    from xray_exp.data.synthetic import build_dataset

    return build_dataset(tmp_path_factory.mktemp("data") / "synthetic_xray", **TINY_DATA)


def tiny_args(data_yaml: Path) -> list[str]:
    """Hydra overrides for a real yolov8n training of a few seconds on CPU on `data_yaml`."""
    data = [f"dataset.{k}={v}" for k, v in TINY_DATA.items()]
    return ["experiment=demo", f"dataset.data={data_yaml}", *data,
            "model=yolov8n", "imgsz=64", "epochs=2", "batch=16", "device=cpu", "workers=0",
            "augmentation.close_mosaic=0"]


@pytest.fixture(scope="session")
def tiny_overrides(synthetic_data) -> list[str]:
    return tiny_args(synthetic_data)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_overrides) -> tuple[Path, str]:
    """One real 2-epoch training shared by the whole session: (run folder, its stdout + stderr)."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    proc = run_module("xray_exp", *tiny_overrides, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc.stdout + proc.stderr


def run_module(module: str, *args: str, cwd: Path | None = None, timeout: float = 600,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m <module> args...` as users do; output captured as text."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def run_train():
    """`python -m xray_exp ...` in a subprocess."""
    return lambda *args, **kw: run_module("xray_exp", *args, **kw)


@pytest.fixture
def run_cli():
    """`xray-exp ...` (as `python -m xray_exp.cli`) in a subprocess."""
    return lambda *args, **kw: run_module("xray_exp.cli", *args, **kw)
