"""Bad tuning input is refused before anything is recorded, with an error naming the parameter."""
from __future__ import annotations

import pytest

from nbsage.errors import HyperparameterError, ValidationError
from nbsage.estimator import Estimator
from nbsage.tuner import (
    CategoricalParameter,
    ContinuousParameter,
    HyperparameterTuner,
    IntegerParameter,
    WarmStartConfig,
    WarmStartTypes,
)
from nbsage.tuning_arguments import parse_range, split_ranges


@pytest.fixture
def xgb():
    return Estimator("xgboost", {"num_round": 5, "objective": "binary:logistic"})


def tuner(est, ranges, **kwargs):
    kwargs.setdefault("max_jobs", 2)
    return HyperparameterTuner(est, kwargs.pop("objective", "validation:auc"), ranges, **kwargs)


def no_job_recorded():
    from nbsage.session import Session
    return Session.default().store.list_jobs() == []


def test_a_range_outside_the_algorithms_declared_range_names_the_parameter_and_the_accepted_values(xgb):
    with pytest.raises(HyperparameterError, match=r"'eta'.*\[0, 2\].*\[0, 1\]") as e:
        tuner(xgb, {"eta": ContinuousParameter(0, 2)})
    assert e.value.hyperparameter == "eta"
    with pytest.raises(HyperparameterError, match="'max_depth'"):
        tuner(xgb, {"max_depth": IntegerParameter(-1, 4)})
    assert no_job_recorded()


def test_an_objective_the_algorithm_does_not_emit_suggests_its_declared_metric(xgb):
    with pytest.raises(ValidationError, match=r"'validation:acu' is not a metric XGBoost emits.*did you mean 'validation:auc'"):
        tuner(xgb, {"eta": ContinuousParameter(0.1, 0.3)}, objective="validation:acu")


def test_a_script_objective_without_a_metric_definition_says_which_metric_to_define(tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    est = Estimator(entry_point="train.py", source_dir=str(tmp_path))
    with pytest.raises(ValidationError, match=r"Provide a metric in the metric definitions: 'val:score'"):
        tuner(est, {"lr": ContinuousParameter(0.1, 0.3)}, objective="val:score")


def test_max_parallel_jobs_greater_than_max_jobs_is_refused(xgb):
    with pytest.raises(ValidationError, match=r"max_parallel_jobs \(5\) cannot be greater than max_jobs \(3\)"):
        tuner(xgb, {"eta": ContinuousParameter(0.1, 0.3)}, max_jobs=3, max_parallel_jobs=5)


def test_a_categorical_parameter_with_no_values_names_the_parameter(xgb):
    with pytest.raises(HyperparameterError, match="'max_depth': CategoricalParameter has no values"):
        tuner(xgb, {"max_depth": CategoricalParameter([])})


def test_a_static_hyperparameter_also_given_as_a_range_is_refused(xgb):
    xgb.set_hyperparameters(eta=0.2)
    with pytest.raises(HyperparameterError, match="'eta' is given both as a fixed value"):
        tuner(xgb, {"eta": ContinuousParameter(0.1, 0.3)})


def test_categorical_values_are_checked_against_the_declared_kind(xgb):
    with pytest.raises(HyperparameterError, match="'max_depth': categorical value 'deep'"):
        tuner(xgb, {"max_depth": CategoricalParameter(["3", "deep"])})


def test_a_hyperparameter_the_algorithm_does_not_declare_tunable_is_refused_naming_the_tunable_ones(xgb):
    with pytest.raises(HyperparameterError, match="'booster' of XGBoost is not tunable.*tunes alpha, colsample_bylevel"):
        tuner(xgb, {"booster": CategoricalParameter(["gbtree", "dart"])})


def test_an_emitted_metric_that_is_not_a_tuning_objective_is_refused(xgb):
    with pytest.raises(ValidationError, match="'train:auc' is emitted by XGBoost but is not one a tuning job can optimise"):
        tuner(xgb, {"eta": ContinuousParameter(0.1, 0.3)}, objective="train:auc")


def test_an_unknown_hyperparameter_gets_did_you_mean(xgb):
    with pytest.raises(HyperparameterError, match="did you mean 'max_depth'"):
        tuner(xgb, {"max_dept": IntegerParameter(2, 4)})


def test_sagemaker_rules_for_strategies_scaling_and_limits(xgb):
    with pytest.raises(HyperparameterError, match="Grid strategy takes categorical"):
        tuner(xgb, {"eta": ContinuousParameter(0.1, 0.3)}, strategy="Grid", max_jobs=None)
    with pytest.raises(ValidationError, match=r"max_jobs \(5\) must be left out or equal.*\(2\)"):
        tuner(xgb, {"max_depth": CategoricalParameter(["2", "4"])}, strategy="Grid", max_jobs=5)
    grid = tuner(xgb, {"eta": CategoricalParameter(["0.1", "0.2"]), "max_depth": IntegerParameter(2, 4)},
                 strategy="Grid", max_jobs=None)
    assert grid._resolved_max_jobs() == 6
    with pytest.raises(HyperparameterError, match="Logarithmic scaling needs a range of values greater than 0"):
        tuner(xgb, {"gamma": ContinuousParameter(0, 1, "Logarithmic")})
    with pytest.raises(HyperparameterError, match="ReverseLogarithmic scaling needs a range within 0 <= x < 1"):
        tuner(xgb, {"subsample": ContinuousParameter(0.5, 1.0, "ReverseLogarithmic")})
    with pytest.raises(HyperparameterError, match="is an integer: use IntegerParameter"):
        tuner(xgb, {"max_depth": ContinuousParameter(2, 4)})
    with pytest.raises(ValidationError, match="strategy 'Bayes' is not valid.*did you mean 'Bayesian'"):
        tuner(xgb, {"eta": ContinuousParameter(0.1, 0.3)}, strategy="Bayes")
    with pytest.raises(ValidationError, match="above SageMaker's limit of 750"):
        tuner(xgb, {"eta": ContinuousParameter(0.1, 0.3)}, max_jobs=751)
    with pytest.raises(ValidationError, match="Hyperband needs MaxResource|early_stopping_type must be 'Off'"):
        tuner(xgb, {"eta": ContinuousParameter(0.1, 0.3)}, strategy="Hyperband", early_stopping_type="Auto")


def test_the_algorithms_own_rules_run_on_a_trials_hyperparameters_before_any_trial():
    est = Estimator("xgboost", {"num_round": 5, "objective": "multi:softmax"})
    with pytest.raises(HyperparameterError, match="'num_class' is required"):
        tuner(est, {"eta": ContinuousParameter(0.1, 0.3)}, objective="validation:merror")


def test_a_required_hyperparameter_may_be_the_tuned_one():
    est = Estimator("xgboost", {"objective": "binary:logistic"})
    t = tuner(est, {"num_round": IntegerParameter(2, 5)})
    assert t.hyperparameter_ranges()["IntegerParameterRanges"] == [
        {"Name": "num_round", "MinValue": "2", "MaxValue": "5", "ScalingType": "Auto"}]
    assert t.objective_type == "Maximize"  # validation:auc's declared direction
    assert tuner(est, {"num_round": IntegerParameter(2, 5)}, objective="validation:logloss").objective_type == "Minimize"


def test_warm_start_parents_must_exist_as_tuning_jobs(xgb):
    t = tuner(xgb, {"eta": ContinuousParameter(0.1, 0.3)},
              warm_start_config=WarmStartConfig(WarmStartTypes.TRANSFER_LEARNING, ["no-such-tuning"]))
    with pytest.raises(ValidationError, match="warm start parent: no job named 'no-such-tuning'"):
        t.fit({"train": "/nonexistent"}, wait=False)
    assert no_job_recorded()


def test_the_range_syntax_of_the_faces():
    fixed, ranges = split_ranges({"num_round": 5, "max_depth": "int(3, 10)", "eta": "float(0.01, 0.3, log)",
                                  "booster": "choice(gbtree, dart)", "objective": "binary:logistic"})
    assert fixed == {"num_round": 5, "objective": "binary:logistic"}
    assert ranges == {"max_depth": IntegerParameter(3, 10), "eta": ContinuousParameter(0.01, 0.3, "Logarithmic"),
                      "booster": CategoricalParameter(["gbtree", "dart"])}
    with pytest.raises(HyperparameterError, match="'eta': scaling 'logg' is not one of"):
        parse_range("eta", "float(0.1, 0.2, logg)")
    with pytest.raises(HyperparameterError, match="'booster': choice\\(\\) has no values"):
        parse_range("booster", "choice()")
    with pytest.raises(HyperparameterError, match="'max_depth': the ends of 'int\\(3, x\\)' are not whole numbers"):
        parse_range("max_depth", "int(3, x)")


def test_each_strategy_maps_to_its_optuna_sampler_and_pruner():
    import optuna

    from nbsage.tuning import search
    ranges = {"eta": ContinuousParameter(0.01, 0.3), "max_depth": IntegerParameter(2, 4),
              "booster": CategoricalParameter(["gbtree", "dart"])}
    assert isinstance(search.sampler("Bayesian", ranges, 1), optuna.samplers.TPESampler)
    assert isinstance(search.sampler("Random", ranges, 1), optuna.samplers.RandomSampler)
    grid = search.sampler("Grid", {"max_depth": IntegerParameter(2, 4), "booster": CategoricalParameter(["a", "b"])}, 1)
    assert isinstance(grid, optuna.samplers.GridSampler)
    assert isinstance(search.pruner("Hyperband", "Off", (1, 20)), optuna.pruners.HyperbandPruner)
    assert isinstance(search.pruner("Bayesian", "Auto"), optuna.pruners.MedianPruner)
    assert isinstance(search.pruner("Random", "Off"), optuna.pruners.NopPruner)
    assert search.is_log(ContinuousParameter(0.001, 1.0)) and not search.is_log(ContinuousParameter(0.1, 0.3))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = search.suggest(trial, {"subsample": ContinuousParameter(0.5, 0.99, "ReverseLogarithmic"), **ranges})
    assert 0.5 <= float(values["subsample"]) <= 0.99 and "1-subsample" in trial.params
    assert values["booster"] in ("gbtree", "dart") and values["max_depth"] in ("2", "3", "4")


def test_nbsage_tune_refuses_bad_input_in_one_line_before_any_trial(tmp_path, capsys):
    from nbsage.cli import main
    (tmp_path / "train.csv").write_text("1,2\n0,3\n")
    code = main(["tune", "xgboost", "--objective", "validation:acu", "--train", str(tmp_path / "train.csv"),
                 "--hp", "num_round=3", "--hp", "eta=float(0.1, 0.3, log)"])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'validation:auc'" in err and len(err.strip().splitlines()) == 1
    code = main(["tune", "xgboost", "--objective", "validation:auc", "--train", str(tmp_path / "train.csv"),
                 "--hp", "num_round=3", "--max-jobs", "2", "--max-parallel", "3", "--hp", "max_depth=int(2, 4)"])
    assert code == 2 and "max_parallel_jobs (3) cannot be greater than max_jobs (2)" in capsys.readouterr().err
    code = main(["tune", "xgboost", "--objective", "validation:auc", "--train", str(tmp_path / "train.csv"),
                 "--hp", "num_round=3"])
    assert code == 2 and "no hyperparameter to tune" in capsys.readouterr().err
    assert no_job_recorded()


def test_the_objective_metric_is_checked_with_the_algorithms_rules_before_any_trial():
    est = Estimator("xgboost", {"num_round": 5})  # reg:squarederror: XGBoost computes no auc for it
    with pytest.raises(HyperparameterError, match="eval_metric 'auc' applies only to binary: and rank: objectives"):
        tuner(est, {"eta": ContinuousParameter(0.1, 0.3)})
