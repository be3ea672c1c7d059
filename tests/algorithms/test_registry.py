"""The algorithm registry: names, the aliases each declaration names, image names, and cheap lookups."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from nbsage import algorithms
from nbsage.errors import ValidationError

REPO = Path(__file__).resolve().parents[2]

# the repository names of SageMaker's built-in algorithm images (and the SDK's framework names)
SAGEMAKER_IMAGE_NAMES = {
    "forecasting-deepar": "deepar",
    "deepar-forecasting": "deepar",
    "linear-learner": "linear-learner",
    "xgboost": "xgboost",
    "sagemaker-xgboost": "xgboost",
    "blazingtext": "blazingtext",
}


@pytest.mark.parametrize("image, expected", sorted(SAGEMAKER_IMAGE_NAMES.items()))
def test_every_sagemaker_image_name_names_its_algorithm(image, expected):
    assert algorithms.get(image).name == expected
    uri = f"522234722520.dkr.ecr.us-east-1.amazonaws.com/{image}:1"
    assert algorithms.canonical_name(uri) == expected


@pytest.mark.parametrize("name", algorithms.names())
def test_every_declared_alias_resolves_to_its_algorithm(name):
    declared = algorithms.get(name)
    assert declared.name == name
    for alias in declared.aliases:
        assert algorithms.get(alias) is declared
        assert algorithms.get(alias.upper()) is declared
        assert algorithms.aliases()[alias] == name


def test_short_forms_still_accepted():
    for alias, expected in {"ll": "linear-learner", "linear_learner": "linear-learner",
                            "linearlearner": "linear-learner", "xgb": "xgboost"}.items():
        assert algorithms.canonical_name(alias) == expected


def test_an_unknown_name_is_refused_with_the_built_ins_and_a_suggestion():
    with pytest.raises(ValidationError, match="built-ins are blazingtext, deepar, linear-learner, object-detection, xgboost.*"
                                              "did you mean 'deepar-forecasting'"):
        algorithms.get("deepar-forecastin")
    assert not algorithms.is_builtin("kmeans")


def test_looking_names_and_aliases_up_imports_no_heavy_library():
    code = ("import sys; from nbsage import algorithms; "
            "[algorithms.get(n) for n in ('forecasting-deepar', 'll', 'xgb', 'blazingtext')]; "
            "print(sorted(m for m in ('torch', 'xgboost', 'numpy', 'numba', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _nbsage_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nbsage"):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("nbsage"))
    return names


def test_algorithms_and_the_inference_contract_import_nothing_of_the_runtime():
    package = REPO / "nbsage"
    for path in sorted((package / "algorithms").rglob("*.py")):
        runtime = sorted(m for m in _nbsage_imports(path) if m.startswith("nbsage.runtime"))
        assert not runtime, f"{path.relative_to(REPO)} imports {runtime}"
    contract = _nbsage_imports(package / "inference_contract.py")
    assert not [m for m in contract if m.startswith(("nbsage.runtime", "nbsage.algorithms"))], contract
