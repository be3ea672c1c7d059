"""Hyperparameter kinds, checked for every hyperparameter every built-in algorithm declares.

As scikit-learn's estimator checks generate invalid parameter values from the constraints, each kind
generates values it must reject (`Hyperparameter.invalid_values`): every algorithm rejects each of
them with a HyperparameterError that names the hyperparameter, in the message and as an attribute.
"""
from __future__ import annotations

import pickle

import ipywidgets as widgets
import pytest

from nbsage import algorithms
from nbsage.algorithms.base import AUTO, Hyperparameter, closed, greater_than
from nbsage.algorithms.hyperparameters import BOOLEAN, INTEGER, JSON, KINDS, LIST, NUMBER, STRING, Kind
from nbsage.errors import HyperparameterError
from support import loadable_algorithms


def _valid_example(hp):
    if hp.default is not None:
        return hp.default
    if hp.choices:
        return hp.choices[0]
    if hp.range is not None and hp.range.low is not None:
        return hp.range.low + (0 if hp.range.low_inclusive else 1)
    return 1


def _cases():
    for name in loadable_algorithms():
        for hp in algorithms.get(name).hyperparameters:
            for value in hp.invalid_values():
                yield pytest.param(name, hp.name, value, id=f"{name}-{hp.name}-{value!r}")


@pytest.mark.parametrize("algorithm,name,value", list(_cases()))
def test_every_algorithm_rejects_an_invalid_value_of_every_hyperparameter_naming_it(algorithm, name, value):
    declaration = algorithms.get(algorithm)
    required = {hp.name: _valid_example(hp) for hp in declaration.hyperparameters if hp.required}
    with pytest.raises(HyperparameterError) as caught:
        declaration.validate({**required, name: value})
    assert caught.value.hyperparameter == name
    assert repr(name) in str(caught.value) and "expected" in str(caught.value)


@pytest.mark.parametrize("algorithm", loadable_algorithms())
def test_every_declared_default_is_accepted_and_written_back_the_same(algorithm):
    declaration = algorithms.get(algorithm)
    for hp in declaration.hyperparameters:
        assert isinstance(hp.kind, Kind) and KINDS[str(hp.kind)] is hp.kind
        if hp.default is not None:
            assert hp.parse(hp.to_string(hp.default)) == hp.parse(hp.default), hp.name


def test_a_declaration_names_its_kind_by_word_or_object():
    assert Hyperparameter("depth", "int", "").kind is INTEGER is Hyperparameter("depth", INTEGER, "").kind
    with pytest.raises(ValueError, match="kind 'integer' is not one of str, int, float, bool, list, json"):
        Hyperparameter("depth", "integer", "")


def test_each_kind_parses_describes_and_writes_its_values():
    depth = Hyperparameter("max_depth", "int", "", range=closed(0, 10))
    assert depth.parse(" 3 ") == 3 and depth.parse(3.0) == 3 and depth.describe() == "an integer in [0, 10]"
    rate = Hyperparameter("eta", NUMBER, "", range=greater_than(0), allow_auto=True)
    assert rate.parse('"auto"') == AUTO and rate.parse("1e-3") == 0.001
    assert rate.describe() == "a number in > 0 or 'auto'"
    flag = Hyperparameter("use_bias", BOOLEAN, "")
    assert flag.parse("Yes") is True and flag.to_string(False) == "false"
    metrics = Hyperparameter("eval_metric", LIST, "", choices=("auc", "error"))
    assert metrics.parse("auc, error@0.7") == ["auc", "error@0.7"]
    assert metrics.to_string(["auc", "error@0.7"]) == "auc,error@0.7"
    assert metrics.describe() == "one of auc, error (comma-separated)"
    assert Hyperparameter("q", LIST, "").to_string((0.1, 0.9)) == "[0.1, 0.9]"
    groups = Hyperparameter("interaction_constraints", JSON, "")
    assert groups.parse("((0,1),(2,3))") == [[0, 1], [2, 3]]
    optimizer = Hyperparameter("optimizer", STRING, "", choices=("adam", "sgd"))
    with pytest.raises(HyperparameterError, match="'optimizer' = 'adma' is not valid: did you mean 'adam'"):
        optimizer.parse("adma")


def test_each_kind_builds_its_form_control():
    assert isinstance(Hyperparameter("epochs", INTEGER, "", default=15).widget(), widgets.IntText)
    assert isinstance(Hyperparameter("eta", NUMBER, "", default=0.3).widget(), widgets.FloatText)
    assert isinstance(Hyperparameter("eta", NUMBER, "", default=AUTO, allow_auto=True).widget(), widgets.Text)
    assert isinstance(Hyperparameter("use_bias", BOOLEAN, "", default=True).widget(), widgets.Checkbox)
    picker = Hyperparameter("optimizer", STRING, "", choices=("adam", "sgd")).widget()
    assert isinstance(picker, widgets.Dropdown) and picker.value is None and picker.options[0] == ("(not set)", None)
    several = Hyperparameter("eval_metric", LIST, "", choices=("auc", "error"), default=("auc",)).widget()
    assert isinstance(several, widgets.Text) and several.value == "auc"


def test_the_name_travels_with_the_error():
    hp = Hyperparameter("epochs", INTEGER, "", range=greater_than(0))
    with pytest.raises(HyperparameterError) as caught:
        hp.parse(0)
    again = pickle.loads(pickle.dumps(caught.value))
    assert again.hyperparameter == "epochs" and str(again) == str(caught.value)
    assert pickle.loads(pickle.dumps(hp)) == hp and pickle.loads(pickle.dumps(hp)).kind is INTEGER
    with pytest.raises(HyperparameterError) as unknown:
        algorithms.get("linear-learner").hyperparameter("epoch")
    assert unknown.value.hyperparameter == "epoch" and "did you mean 'epochs'" in str(unknown.value)
