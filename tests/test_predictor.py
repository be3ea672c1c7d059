"""Model.deploy() -> Predictor, and the SDK v2 serializers and deserializers it uses."""
from __future__ import annotations

import io
import json
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from nbsage.deserializers import (BytesDeserializer, CSVDeserializer, JSONDeserializer, JSONLinesDeserializer,
                                  NumpyDeserializer, PandasDeserializer, StringDeserializer)
from nbsage.errors import ModelError, ValidationError
from nbsage.model import Model
from nbsage.predictor import Predictor
from nbsage.serializers import (CSVSerializer, IdentitySerializer, JSONLinesSerializer, JSONSerializer,
                                LibSVMSerializer, NumpySerializer)
from nbsage.serving import endpoints
from nbsage.session import Session
from support import INFERENCE, make_tarball



# ---- serializers ---------------------------------------------------------------------------------
def test_csv_serializer_shapes():
    s = CSVSerializer()
    assert s.CONTENT_TYPE == "text/csv"
    assert s.serialize(np.array([[1.5, 2], [3, 4]])) == "1.5,2.0\n3.0,4.0"
    assert s.serialize(np.array([1, 2, 3])) == "1,2,3"
    assert s.serialize([[1, 2], [3, 4]]) == "1,2\n3,4"
    assert s.serialize([1, 2.5]) == "1,2.5"
    assert s.serialize("1,2,3") == "1,2,3"
    assert s.serialize(pd.DataFrame({"a": [1, 2], "b": [3.5, 4]})) == "1,3.5\n2,4.0"
    assert s.serialize(np.array([0.1], dtype=np.float32)) == "0.1"
    with pytest.raises(ValidationError, match="empty"):
        s.serialize([])


def test_json_numpy_identity_jsonlines_libsvm_serializers():
    assert JSONSerializer().CONTENT_TYPE == "application/json"
    assert json.loads(JSONSerializer().serialize(np.array([[1, 2]]))) == [[1, 2]]
    assert json.loads(JSONSerializer().serialize({"instances": np.arange(2), "k": np.float32(1.5)})) == \
        {"instances": [0, 1], "k": 1.5}
    npy = NumpySerializer()
    assert npy.CONTENT_TYPE == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.serialize([[1, 2]]))), [[1, 2]])
    assert IdentitySerializer().serialize(b"raw") == b"raw"
    assert IdentitySerializer().CONTENT_TYPE == "application/octet-stream"
    assert JSONLinesSerializer().serialize([{"a": 1}, [2]]) == '{"a": 1}\n[2]'
    assert JSONLinesSerializer().CONTENT_TYPE == "application/jsonlines"
    libsvm = LibSVMSerializer()
    assert libsvm.CONTENT_TYPE == "text/libsvm"
    assert libsvm.serialize(scipy.sparse.csr_matrix([[0, 1.5], [2, 0]])) == "0 1:1.5\n0 0:2.0"
    assert libsvm.serialize(np.array([0.0, 3.0])) == "0 1:3.0"


# ---- deserializers -------------------------------------------------------------------------------
def test_deserializers_read_streams_and_name_their_accept():
    assert BytesDeserializer().ACCEPT == ("*/*",)
    assert BytesDeserializer().deserialize(io.BytesIO(b"x"), "a/b") == b"x"
    assert StringDeserializer().deserialize(io.BytesIO(b"hi"), "text/plain") == "hi"
    assert CSVDeserializer().ACCEPT == ("text/csv",)
    assert CSVDeserializer().deserialize(io.BytesIO(b"1,2\n3,4\n"), "text/csv") == [["1", "2"], ["3", "4"]]
    assert JSONDeserializer().deserialize(io.BytesIO(b'{"a": [1]}'), "application/json") == {"a": [1]}
    assert JSONLinesDeserializer().deserialize(io.BytesIO(b'{"a": 1}\n{"a": 2}\n'), "application/jsonlines") == \
        [{"a": 1}, {"a": 2}]
    buf = io.BytesIO()
    np.save(buf, np.array([1.0, 2.0]))
    np.testing.assert_array_equal(NumpyDeserializer().deserialize(io.BytesIO(buf.getvalue()), "application/x-npy"),
                                  [1.0, 2.0])
    np.testing.assert_array_equal(NumpyDeserializer().deserialize(io.BytesIO(b"1,2\n3,4"), "text/csv"),
                                  [[1, 2], [3, 4]])
    np.testing.assert_array_equal(NumpyDeserializer().deserialize(b"[1, 2]", "application/json; charset=utf-8"),
                                  [1, 2])
    assert PandasDeserializer().ACCEPT == ("text/csv", "application/json")
    frame = PandasDeserializer().deserialize(io.BytesIO(b"0.5\n0.25\n"), "text/csv")
    assert frame.shape == (2, 1) and frame.iloc[0, 0] == 0.5


# ---- Model.deploy() and Predictor ------------------------------------------------------------------
def test_model_with_inference_code_deploys_and_predicts_with_each_serializer(session, tmp_path):
    model = Model(str(make_tarball(tmp_path)), sagemaker_session=session)
    predictor = model.deploy(endpoint_name="linear")
    assert isinstance(predictor, Predictor) and model.endpoint_name == "linear"
    # user code defaults: JSON in, JSON out
    assert isinstance(predictor.serializer, JSONSerializer) and isinstance(predictor.deserializer, JSONDeserializer)
    assert predictor.predict([[1, 2, 3], [1, 1, 1]]) == [14.0, 6.0]

    predictor.serializer, predictor.deserializer = CSVSerializer(), CSVDeserializer()
    assert predictor.predict(np.array([[0, 0, 1]])) == [["3.0"]]
    predictor.serializer, predictor.deserializer = NumpySerializer(), NumpyDeserializer()
    np.testing.assert_allclose(predictor.predict(np.eye(3)), [1.0, 2.0, 3.0])

    assert predictor.endpoint == "linear"
    assert predictor.describe()["EndpointStatus"] == "InService"
    text = repr(predictor)
    assert "linear" in text and "InService" in text and "http://127.0.0.1:" in text
    assert "InService" in predictor._repr_html_()
    predictor.delete_endpoint()
    assert "NotFound" in repr(predictor)


def test_bad_requests_get_their_status_and_the_endpoint_keeps_serving(session, tmp_path):
    predictor = Model(str(make_tarball(tmp_path)), sagemaker_session=session).deploy(endpoint_name="strict")
    good = [[1, 1, 1]]
    cases = [
        (dict(initial_args={"ContentType": "image/png", "Body": b"\x89PNG"}), 415, "image/png"),
        (dict(initial_args={"Accept": "application/x-unknown"}), 406, "application/x-unknown"),
        (dict(initial_args={"ContentType": "text/csv", "Body": b"1" * (7 * 1024 * 1024)}), 413, "payload limit"),
        (dict(initial_args={"Body": b'{"rows": [1, 2'}), 400, "not valid JSON"),
    ]
    for kwargs, status, words in cases:
        with pytest.raises(ModelError) as info:
            predictor.predict(good, **kwargs)
        assert info.value.status == status and words in info.value.message
        assert predictor.predict(good) == [6.0]


def test_entry_point_and_source_dir_repack_the_model_beside_the_original(session, tmp_path):
    archive = make_tarball(tmp_path, script=None)
    src = tmp_path / "serve"
    src.mkdir()
    (src / "helpers.py").write_text("SCALE = 10\n")
    (src / "serve.py").write_text(textwrap.dedent(INFERENCE).replace(
        "return np.atleast_2d", "from helpers import SCALE\n    return SCALE * np.atleast_2d"))
    model = Model(str(archive), entry_point="serve.py", source_dir=str(src), sagemaker_session=session)
    predictor = model.deploy(endpoint_name="repacked")
    assert predictor.predict([[1, 1, 1]]) == [60.0]

    repacked = Path(model.repacked_model_data)
    assert repacked.parent == archive.parent and repacked != archive
    with tarfile.open(repacked) as tar:
        names = set(tar.getnames())
    assert {"weights.npy", "code/serve.py", "code/helpers.py"} <= names
    config = session.store.get_endpoint("repacked")["config"]
    assert config["EntryPoint"] == "serve.py" and config["ModelDataUrl"] == str(repacked)


def test_predictor_with_no_session_uses_the_default_one(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSAGE_HOME", str(tmp_path / "default-home"))
    default = Session.default()
    try:
        Model(str(make_tarball(tmp_path))).deploy(endpoint_name="by-default")
        assert Predictor("by-default", serializer=JSONSerializer(),
                         deserializer=JSONDeserializer()).predict([[1, 0, 0]]) == [1.0]
    finally:
        for record in default.store.list_endpoints():
            endpoints.delete_endpoint(default, record["name"])


def test_model_arguments_are_validated_up_front(tmp_path):
    with pytest.raises(ValidationError, match="did you mean 'xgboost'"):
        Model("m.tar.gz", algorithm="xgbost")
    with pytest.raises(ValidationError, match="entry_point 'missing.py' was not found"):
        Model("m.tar.gz", entry_point="missing.py", source_dir=str(tmp_path))
    assert Model("m.tar.gz", image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
                 ).algorithm == "xgboost"
