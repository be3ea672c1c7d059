"""Compilation to ONNX: each compilable algorithm's model converted, recorded as a compilation job,
served by onnxruntime with the native model's answers; what does not compile is named."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxmltools")

from compilation import models  # noqa: E402
from nbsage.compilation import CompilationError  # noqa: E402
from nbsage.compilation.job import CompilationJob  # noqa: E402
from nbsage.model import Model  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("compile-models")


@pytest.fixture(scope="module")
def xgb(folder):
    return models.xgboost_model(folder)


def compiled_handler(model):
    """The handler the model server loads for a compiled model.tar.gz."""
    import tarfile
    import tempfile

    from nbsage.runtime.serve import load_handler
    target = tempfile.mkdtemp(prefix="compiled-")
    with tarfile.open(model.model_data) as tar:
        tar.extractall(target, filter="data")
    return load_handler(target, model.algorithm)


def test_xgboost_compiles_and_its_endpoint_answers_as_the_native_model(session, xgb, tmp_path):
    from nbsage.serializers import CSVSerializer
    booster, archive, X = xgb
    model = Model(str(archive), algorithm="xgboost", sagemaker_session=session)
    model.compile("ml_c5", input_shape={"data": [1, 8]}, output_path=str(tmp_path / "out"), framework="xgboost",
                  framework_version="3.2", job_name="xgb-c5")
    assert model.model_data == str(tmp_path / "out" / "model-ml_c5.tar.gz")
    desc = CompilationJob("xgb-c5", session).describe()
    assert desc["CompilationJobStatus"] == "COMPLETED"
    assert desc["OutputConfig"] == {"S3OutputLocation": str(tmp_path / "out"), "TargetDevice": "ml_c5"}
    assert desc["InputConfig"]["Framework"] == "XGBOOST" and json.loads(desc["InputConfig"]["DataInputConfig"]) == \
        {"data": [1, 8]}
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == model.model_data
    assert desc["nbsage:Parity"]["MaxAbsDiff"] <= 1e-5
    predictor = model.deploy(serializer=CSVSerializer())
    try:
        rows = X[:30]
        body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)
        served = np.array([float(r[0]) for r in predictor.predict(body)])
        np.testing.assert_allclose(served, booster.inplace_predict(rows), atol=1e-5)
    finally:
        predictor.delete_endpoint()


def test_compiled_xgboost_reads_sparse_rows_as_missing_values_like_xgboost(session, xgb, tmp_path):
    import xgboost
    booster, archive, _ = xgb
    model = Model(str(archive), algorithm="xgboost", sagemaker_session=session).compile(
        "local", output_path=str(tmp_path))
    handler = compiled_handler(model)
    body = b"1:0.5 3:-1.2\n0:2.0 7:0.1\n"
    served = np.array([float(v) for v in handler.predict(body, "text/libsvm", "text/csv").split()])
    import scipy.sparse as sp
    csr = sp.csr_matrix(([0.5, -1.2, 2.0, 0.1], [1, 3, 0, 7], [0, 2, 4]), shape=(2, 8))
    np.testing.assert_allclose(served, booster.predict(xgboost.DMatrix(csr)), atol=1e-5)


@pytest.mark.parametrize("objective", ["multi:softprob", "reg:squarederror"])
def test_other_xgboost_objectives_compile_within_parity(session, folder, objective, tmp_path):
    booster, archive, X = models.xgboost_model(folder, objective, rounds=8)
    model = Model(str(archive), algorithm="xgboost", sagemaker_session=session).compile(
        "ml_m5", output_path=str(tmp_path))
    np.testing.assert_allclose(compiled_handler(model).predictions(X[:50]), booster.inplace_predict(X[:50]),
                               atol=1e-5)


@pytest.mark.parametrize("predictor_type", ["binary_classifier", "multiclass_classifier", "regressor"])
def test_linear_learner_compiles_and_answers_the_same_records(session, folder, predictor_type, tmp_path):
    from nbsage import algorithms
    (folder / predictor_type).mkdir()
    archive = models.linear_learner_model(folder / predictor_type, predictor_type)
    model = Model(str(archive), algorithm="linear-learner", sagemaker_session=session)
    native = algorithms.get("linear-learner").load(folder / predictor_type / "ll")
    model.compile("ml_c5", output_path=str(tmp_path))
    body = b"0.1,0.2,-0.3,1.5,0.0,2.0\n-1,-2,0.5,0.25,3,0.5\n"
    served = json.loads(compiled_handler(model).predict(body, "text/csv", "application/json"))["predictions"]
    expected = json.loads(native.predict(body, "text/csv", "application/json"))["predictions"]
    assert [r.get("predicted_label") for r in served] == [r.get("predicted_label") for r in expected]
    np.testing.assert_allclose([r["score"] for r in served], [r["score"] for r in expected], rtol=1e-12)


def test_blazingtext_supervised_compiles_and_word_vectors_do_not(session, folder, tmp_path):
    from nbsage import algorithms
    archive = models.blazingtext_model(folder)
    native = algorithms.get("blazingtext").load(folder / "bt")
    model = Model(str(archive), algorithm="blazingtext", sagemaker_session=session).compile(
        "ml_c5", output_path=str(tmp_path))
    body = json.dumps({"instances": ["good movie", "the plot was awful awful", "unknown words only", ""],
                       "configuration": {"k": 2}}).encode()
    served = json.loads(compiled_handler(model).predict(body, "application/json", "application/json"))
    expected = json.loads(native.predict(body, "application/json", "application/json"))
    assert [r["label"] for r in served] == [r["label"] for r in expected]
    np.testing.assert_allclose([r["prob"] for r in served], [r["prob"] for r in expected], atol=1e-5)
    vectors = Model(str(models.word_vectors_model(folder)), algorithm="blazingtext", sagemaker_session=session)
    with pytest.raises(CompilationError, match="word vectors .Word2Vec mode.; only the supervised classifier"):
        vectors.compile("ml_c5", output_path=str(tmp_path))


def test_deepar_compiles_its_network_step_and_forecasts_as_the_native(session, folder, tmp_path):
    from nbsage import algorithms
    archive, records = models.deepar_model(folder)
    model = Model(str(archive), algorithm="deepar", sagemaker_session=session).compile(
        "ml_c5", output_path=str(tmp_path), framework="pytorch")
    compiled = compiled_handler(model)
    native = algorithms.get("deepar").load(str(folder / "root" / "model"))
    series = [native.parse_instance(r, f"record {i}") for i, r in enumerate(records[:3])]
    ours = compiled.predictor.forecast(series, 8, seed=3)
    theirs = native.predictor.forecast(series, 8, seed=3)
    assert ours.shape == theirs.shape == (3, 8, 12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3 * float(np.abs(theirs).max()))


def test_what_does_not_compile_is_named(session, folder, xgb, tmp_path):
    _, archive, _ = xgb
    model = Model(str(archive), algorithm="xgboost", sagemaker_session=session)
    with pytest.raises(CompilationError, match="'jetson_nano' is an edge device"):
        model.compile("jetson_nano", output_path=str(tmp_path))
    with pytest.raises(CompilationError, match="framework 'tensorflow' does not describe a xgboost model"):
        model.compile("ml_c5", output_path=str(tmp_path), framework="tensorflow")
    with pytest.raises(CompilationError, match="input_shape gives 30 features and the model has 8"):
        model.compile("ml_c5", input_shape={"data": [1, 30]}, output_path=str(tmp_path), job_name="wrong-shape")
    assert CompilationJob("wrong-shape", session).describe()["CompilationJobStatus"] == "FAILED"
    _, logistic, _ = models.xgboost_model(folder, "reg:logistic", rounds=3)
    with pytest.raises(CompilationError, match="objective 'reg:logistic' is not supported by the XGBoost compiler"):
        Model(str(logistic), algorithm="xgboost", sagemaker_session=session).compile("ml_c5", output_path=str(tmp_path))
    from support import make_tarball
    script_model = Model(str(make_tarball(tmp_path / "script")), sagemaker_session=session)
    with pytest.raises(CompilationError, match="a model served by inference code cannot be compiled"):
        script_model.compile("ml_c5", output_path=str(tmp_path))


def test_deploying_a_compiled_model_that_was_not_made_names_the_family(session):
    from nbsage.errors import ValidationError
    from nbsage.estimator import Estimator
    estimator = Estimator("xgboost", {"num_round": 2}, sagemaker_session=session)
    with pytest.raises(ValidationError, match=r"no model was compiled for 'ml_c5' \(instance type 'ml.c5.xlarge'\)"):
        estimator.deploy(instance_type="ml.c5.xlarge", use_compiled_model=True)
