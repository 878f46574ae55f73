"""Each cross-process contract (a file name in a sweep or run folder, a trial attribute, a target
class, Optuna's private storage API) is spelled in exactly one module of the package: renaming it in
one place cannot silently break pruning, resume or compare."""
import ast
from pathlib import Path

import pytest

from helpers import ROOT

CONTRACT_STRINGS = {
    "xray_exp:pruner": "xray_exp/study.py",
    "xray_exp:owner": "xray_exp/study.py",
    "xray_exp:heartbeat_s": "xray_exp/study.py",
    "study.db": "xray_exp/study.py",
    "trials.csv": "xray_exp/study.py",
    "best.yaml": "xray_exp/study.py",
    "optimization_results.yaml": "xray_exp/study.py",
    "metrics.json": "xray_exp/run/run_folder.py",
    "results.csv": "xray_exp/run/run_folder.py",
    "eval.json": "xray_exp/analysis/evaluate.py",
    "hydra_plugins.xray_exp_sweeper.xray_optuna_sweeper.XrayOptunaSweeper": "hydra_plugins/xray_exp_sweeper/config.py",
}
PRIVATE_OPTUNA = {"_storage", "_study_id"}


def package_modules() -> list[Path]:
    return sorted(p for d in ("xray_exp", "hydra_plugins") for p in (ROOT / d).rglob("*.py"))


def literals_and_attributes(path: Path) -> tuple[set[str], set[str], set[float]]:
    """String constants (docstrings left out: prose may name a file), attribute names and float constants."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    strings, attrs, floats = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            if isinstance(node.value, str):
                strings.add(node.value)
            elif isinstance(node.value, float):
                floats.add(node.value)
        elif isinstance(node, ast.Attribute):
            attrs.add(node.attr)
    return strings, attrs, floats


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[set[str], set[str], set[float]]]:
    return {str(p.relative_to(ROOT)): literals_and_attributes(p) for p in package_modules()}


@pytest.mark.parametrize("contract, home", CONTRACT_STRINGS.items())
def test_each_contract_string_lives_in_one_module(parsed, contract, home):
    holders = [m for m, (strings, _, _) in parsed.items() if contract in strings]
    assert holders == [home]


def test_optunas_private_storage_api_is_wrapped_once(parsed):
    holders = [m for m, (_, attrs, _) in parsed.items() if attrs & PRIVATE_OPTUNA]
    assert holders == ["xray_exp/study.py"]


def test_the_guides_accuracy_threshold_is_defined_once(parsed):
    # (the synthetic generator's shape coordinates are other 0.10s)
    holders = [m for m, (_, _, floats) in parsed.items() if 0.10 in floats and not m.startswith("xray_exp/data/")]
    assert holders == ["xray_exp/analysis/evaluate.py"]
