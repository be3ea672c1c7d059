"""Predictor.predict(target_model=...) as the SDK sends it: TargetModel reaches the endpoint, and an
endpoint that serves one model refuses it, naming what it serves."""
from __future__ import annotations

import pytest

from nbsage.errors import EndpointError
from support import make_tarball


def test_target_model_on_a_single_model_endpoint_names_what_is_supported(session, tmp_path):
    from nbsage.model import Model
    from nbsage.serializers import JSONSerializer
    predictor = Model(str(make_tarball(tmp_path)), sagemaker_session=session).deploy(serializer=JSONSerializer())
    try:
        with pytest.raises(EndpointError) as caught:
            predictor.predict([[1, 2, 3]], target_model="model-a.tar.gz")
        message = str(caught.value)
        assert "serves one model, not a multi-model endpoint" in message
        assert "'model-a.tar.gz'" in message and "without target_model" in message
        assert predictor.predict([[1, 2, 3]]) is not None  # the same call without it is answered
    finally:
        predictor.delete_endpoint()
