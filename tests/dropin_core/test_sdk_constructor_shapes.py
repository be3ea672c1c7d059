"""Estimator, Model and the processors take the SDK's constructor shapes: role second, SDK v1
names mapped with the SDK's warning, versions recorded, any other keyword an error naming it."""
from __future__ import annotations

import warnings

import pytest

import nbsage as sagemaker
from nbsage.errors import ValidationError
from nbsage.estimator import Estimator
from nbsage.model import Model
from nbsage.processing import Processor, ScriptProcessor

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def test_role_is_the_second_positional_argument_and_hyperparameters_still_may_be(session):
    role = sagemaker.get_execution_role()
    est = Estimator("xgboost", role, 2, "ml.m5.xlarge", sagemaker_session=session)
    assert (est.role, est.instance_count, est.instance_type) == (role, 2, "ml.m5.xlarge")
    assert est._hyperparameters == {}
    assert Estimator("xgboost", {"num_round": 3}, sagemaker_session=session).hyperparameters()["num_round"] == "3"


def test_sdk_v1_names_are_mapped_with_the_sdks_deprecation_warning(session):
    with pytest.warns(DeprecationWarning, match="train_instance_count has been renamed in sagemaker>=2") as caught:
        est = Estimator("xgboost", "role", train_instance_count=2, train_instance_type="ml.c5.xlarge",
                        train_max_run=600, train_use_spot_instances=True, train_max_wait=900,
                        train_volume_size=50, sagemaker_session=session)
    assert caught[0].filename == __file__  # shown at the notebook's line, not inside nbsage
    assert (est.instance_count, est.instance_type, est.max_run) == (2, "ml.c5.xlarge", 600)
    assert (est.use_spot_instances, est.max_wait, est.volume_size) == (True, 900, 50)


@pytest.mark.parametrize("build", [
    lambda: Estimator("xgboost", "role", sagemaker_sesion=None),
    lambda: Model("model.tar.gz", algorithm="xgboost", sagemaker_sesion=None),
    lambda: ScriptProcessor(role="r", command=["python3"], sagemaker_sesion=None),
    lambda: Processor(role="r", entrypoint=["python3"], sagemaker_sesion=None),
], ids=["Estimator", "Model", "ScriptProcessor", "Processor"])
def test_an_unknown_keyword_is_an_error_naming_it(session, build):
    with pytest.raises(ValidationError, match="unexpected keyword argument 'sagemaker_sesion'; "
                                              "did you mean 'sagemaker_session'"):
        build()
    with pytest.raises(ValidationError, match="Estimator.. got an unexpected keyword argument 'flavour'; see help"):
        Estimator("xgboost", "role", flavour="vanilla")


def test_place_options_still_go_to_their_place_and_another_places_option_names_it(session, data):
    est = Estimator("xgboost", "role", backend="kernel", gateway="http://127.0.0.1:1", sagemaker_session=session)
    assert est.backend_options == {"gateway": "http://127.0.0.1:1"}
    est = Estimator("xgboost", {"num_round": 1}, gateway="http://127.0.0.1:1", sagemaker_session=session)
    with pytest.raises(ValidationError, match="'gateway' is not an option of the local place.*option of the kernel place"):
        est.fit({"train": str(data)}, wait=False)  # refused by the place, before anything is recorded
    assert session.list_training_jobs() == []


def test_sdk_keywords_without_effect_here_are_accepted_and_recorded(session):
    est = Estimator("xgboost", "role", subnets=["s"], security_group_ids=["g"], output_kms_key="k",
                    enable_network_isolation=True, sagemaker_session=session)
    assert est.sdk_options["subnets"] == ["s"] and est.sdk_options["enable_network_isolation"] is True
    model = Model("model.tar.gz", algorithm="xgboost", vpc_config={"Subnets": []}, sagemaker_session=session)
    assert model.sdk_options == {"vpc_config": {"Subnets": []}}


def test_a_version_nbsage_cannot_honour_is_a_warning_naming_what_runs_instead(session):
    from importlib.metadata import version
    with pytest.warns(UserWarning, match=f"asks for xgboost 1.7; nbsage runs the installed xgboost {version('xgboost')}"):
        est = Estimator(XGBOOST_IMAGE, "role", sagemaker_session=session)
    assert est.algorithm.name == "xgboost" and est.sdk_image == XGBOOST_IMAGE
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the installed major version: no warning
        Estimator("xgboost", "role", framework_version=version("xgboost"), sagemaker_session=session)
    with pytest.warns(UserWarning, match="asks for sklearn 0.23"):
        ScriptProcessor(role="r", command=["python3"], framework_version="0.23-1", sagemaker_session=session,
                        image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:0.23-1-cpu-py3")
    assert Model("m.tar.gz", algorithm="xgboost", framework_version="3.0", py_version="py3",
                 sagemaker_session=session).py_version == "py3"
