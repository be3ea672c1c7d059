"""The SDK's framework classes (sagemaker.sklearn, .pytorch, .xgboost, FrameworkProcessor) and the
container helper modules a job's script sees. Training and serving through them end to end is in
test_dropin_notebooks.py (the official notebooks); these are the pieces those do not reach."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

import nbsage as sagemaker
from nbsage.errors import ValidationError
from nbsage.runtime import framework_modules


def test_framework_classes_resolve_where_the_sdk_has_them():
    from nbsage.deserializers import CSVDeserializer, NumpyDeserializer
    from nbsage.serializers import LibSVMSerializer, NumpySerializer
    assert sagemaker.sklearn.estimator.SKLearn is sagemaker.sklearn.SKLearn
    assert sagemaker.sklearn.processing.SKLearnProcessor is sagemaker.processing.SKLearnProcessor
    assert sagemaker.pytorch.model.PyTorchModel is sagemaker.pytorch.PyTorchModel
    assert sagemaker.xgboost.estimator.XGBoost is sagemaker.xgboost.XGBoost
    assert sagemaker.xgboost.XGBoost is not sagemaker.algorithms.get("xgboost")  # the framework, not the built-in
    for cls, ser, de in [(sagemaker.sklearn.SKLearnPredictor, NumpySerializer, NumpyDeserializer),
                         (sagemaker.pytorch.PyTorchPredictor, NumpySerializer, NumpyDeserializer),
                         (sagemaker.xgboost.XGBoostPredictor, LibSVMSerializer, CSVDeserializer)]:
        predictor = cls("some-endpoint")
        assert (type(predictor.serializer), type(predictor.deserializer)) == (ser, de)


def test_importing_the_framework_packages_loads_no_framework(tmp_path):
    code = ("import sys, nbsage.sklearn, nbsage.pytorch, nbsage.xgboost\n"
            "print([m for m in ('torch', 'xgboost', 'sklearn', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_framework_version_of_another_major_is_a_warning_naming_both(tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    with pytest.warns(UserWarning, match=r"asks for sklearn 0.20.0; nbsage runs the installed scikit-learn 1\."):
        est = sagemaker.sklearn.SKLearn(str(tmp_path / "train.py"), framework_version="0.20.0")
    assert est.framework_version == "0.20.0" and "0.20.0" in est.image
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sagemaker.sklearn.SKLearn(str(tmp_path / "train.py"), framework_version="1.2-1")
    with pytest.raises(ValidationError, match="framework_version"):
        sagemaker.pytorch.PyTorch(str(tmp_path / "train.py"))


def test_sklearn_refuses_several_instances_and_pytorch_a_distribution_launcher(tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    with pytest.raises(ValidationError, match="instance_count=2"):
        sagemaker.sklearn.SKLearn(str(tmp_path / "train.py"), framework_version="1.2-1", instance_count=2)
    with pytest.raises(ValidationError, match="distribution"):
        sagemaker.pytorch.PyTorch(str(tmp_path / "train.py"), framework_version="2.1",
                                  distribution={"torch_distributed": {"enabled": True}})


def test_framework_processor_runs_code_from_source_dir_with_dependencies_and_arguments(tmp_path):
    code, lib, data = tmp_path / "code", tmp_path / "lib" / "helperlib", tmp_path / "data"
    for folder in (code, lib, data):
        folder.mkdir(parents=True)
    (lib / "__init__.py").write_text("GREETING = 'hello'\n")
    (data / "rows.csv").write_text("1,2\n")
    (code / "requirements.txt").write_text("pandas\n")
    (code / "prepare.py").write_text(
        "import argparse, json, os, helperlib\n"
        "p = argparse.ArgumentParser(); p.add_argument('--ratio', type=float); a = p.parse_args()\n"
        "os.makedirs('/opt/ml/processing/out', exist_ok=True)\n"
        "json.dump({'greeting': helperlib.GREETING, 'ratio': a.ratio, 'cwd': os.getcwd(),\n"
        "           'inputs': sorted(os.listdir('/opt/ml/processing/input/data'))},\n"
        "          open('/opt/ml/processing/out/result.json', 'w'))\n")
    processor = sagemaker.processing.FrameworkProcessor(
        estimator_cls=sagemaker.sklearn.SKLearn, framework_version="1.2-1", role=sagemaker.get_execution_role(),
        instance_count=1, instance_type="ml.m5.xlarge")
    processor.run(code="prepare.py", source_dir=str(code), dependencies=[str(lib)],
                  inputs=[sagemaker.processing.ProcessingInput(source=str(data),
                                                               destination="/opt/ml/processing/input/data")],
                  outputs=[sagemaker.processing.ProcessingOutput(output_name="out", source="/opt/ml/processing/out")],
                  arguments=["--ratio", "0.2"], logs=False)
    desc = processor.jobs[-1].describe()
    assert desc["ProcessingJobStatus"] == "Completed"
    uri = desc["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    result = json.loads(sagemaker.s3.S3Downloader.read_file(uri.rstrip("/") + "/result.json"))
    assert result == {"greeting": "hello", "ratio": 0.2, "cwd": "/opt/ml/processing/input/code",
                      "inputs": ["rows.csv"]}
    assert any("requirements.txt in source_dir is not installed" in line for line in processor.jobs[-1].logs())
    with pytest.raises(ValidationError, match="not found in source_dir"):
        processor.run(code="missing.py", source_dir=str(code))


def _run_with_helpers(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A script run with the helper modules last on its path, as script mode runs it."""
    path = os.pathsep.join([p for p in sys.path if p] + [framework_modules.PATH])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=path, **(env or {})))


def test_container_helper_modules_give_what_the_example_scripts_use(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part-0.libsvm").write_text("1 1:0.5 2:1.0\n0 1:0.1 2:0.2\n")
    (tmp_path / "train" / "part-1.libsvm").write_text("1 1:0.7 2:0.9\n")
    (tmp_path / "rows.csv").write_text("1,0.5,1.0\n0,0.1,0.2\n")
    out = _run_with_helpers(
        "from sagemaker_containers import entry_point\n"
        "from sagemaker_xgboost_container.data_utils import get_dmatrix\n"
        "from sagemaker_xgboost_container import distributed\n"
        "from sagemaker_training import environment\n"
        "entry_point._wait_hostname_resolution()\n"
        f"d = get_dmatrix({str(tmp_path / 'train')!r}, 'libsvm'); c = get_dmatrix({str(tmp_path / 'rows.csv')!r}, 'csv')\n"
        f"print(d.num_row(), c.num_row(), c.num_col(), get_dmatrix({str(tmp_path / 'none')!r}, 'csv'))\n"
        "print(distributed.rabit_run(lambda a, is_master: (a, is_master), {'a': 1}, True, ['algo-1'], 'algo-1',"
        " update_rabit_args=True))\n"
        "print(environment.Environment().num_cpus)\n",
        env={"SM_TRAINING_ENV": json.dumps({"num_cpus": 3}), "SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["3 2 2 None", "(1, True)", "3"]


def test_a_container_helper_nbsage_does_not_provide_fails_in_one_line_naming_what_to_use():
    out = _run_with_helpers("import sagemaker_containers\nsagemaker_containers.training_env_vars()\n")
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "sagemaker_containers.training_env_vars is not provided" in last and "SM_" in last
    out = _run_with_helpers("from sagemaker_containers.beta.framework import encoders\n")
    assert "define input_fn/output_fn" in out.stderr.strip().splitlines()[-1]


def test_helper_modules_are_not_importable_outside_a_job():
    out = subprocess.run([sys.executable, "-c", "import sagemaker_containers"], capture_output=True, text=True)
    assert out.returncode != 0 and "No module named 'sagemaker_containers'" in out.stderr


def test_session_clients_answer_the_boto3_calls_notebooks_make():
    session = sagemaker.Session()
    assert session.sagemaker_client.list_endpoints(NameContains="pytorch-endpoint", MaxResults=30) == {"Endpoints": []}
    with pytest.raises(ValidationError, match="answers list_endpoints"):
        session.sagemaker_client.create_transform_job(TransformJobName="x")
    with pytest.raises(ValidationError, match="answers invoke_endpoint"):
        session.sagemaker_runtime_client.invoke_endpoint_async(EndpointName="x")


def test_the_xgboost_and_pytorch_containers_default_predict_for_their_models():
    import numpy as np
    import torch
    import xgboost as xgb
    from nbsage.runtime.user_code import framework_decode, framework_predict
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=[1, 0, 1, 0], feature_names=["a", "b"]), 3)
    one_row = framework_predict(booster)((np.array([0.0, 1.0]), booster), None)  # a CSV row: no names
    assert one_row.shape == (1,)
    rows = framework_decode(booster, "1 0:0.0 1:1.0\n0 0:1.0 1:0.0\n", "text/libsvm")
    assert framework_predict(booster)((rows, booster), None).shape == (2,)
    net = torch.nn.Linear(2, 1)
    out = framework_predict(net)((x, net), None)
    assert isinstance(out, np.ndarray) and out.shape == (4, 1)
    assert framework_predict(object()) is None
