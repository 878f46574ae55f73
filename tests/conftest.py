"""Shared fixtures: one tiny synthetic dataset and one tiny real training per session, composed configs.
Plain helpers (subprocess runners, hashes, settings) are in helpers.py."""
from pathlib import Path

import pytest

from helpers import CONF, TINY_DATA, run_train, tiny_args


@pytest.fixture(scope="module")
def compose_train():
    """compose_train(*overrides) -> the composed conf/train.yaml, as `python -m xray_exp` would see it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        yield lambda *overrides: compose("train", overrides=list(overrides))


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """data.yaml of a tiny synthetic dataset, built once per test session."""
    from xray_exp.data.synthetic import build_dataset

    return build_dataset(tmp_path_factory.mktemp("data") / "synthetic_xray", **TINY_DATA)


@pytest.fixture(scope="session")
def tiny_overrides(synthetic_data) -> list[str]:
    return tiny_args(synthetic_data)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_overrides) -> tuple[Path, str]:
    """One real 2-epoch training shared by the whole session: (run folder, its stdout + stderr)."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    proc = run_train(*tiny_overrides, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc.stdout + proc.stderr
