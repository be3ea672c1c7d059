"""Fixtures of the pipeline tests: the test pipeline's models (pipeline_data.py), built once per module,
and a Session of the module's own for endpoints several tests share."""
from __future__ import annotations

import pytest

from pipelines.pipeline_data import build_parts


@pytest.fixture(scope="module")
def pipeline_parts(tmp_path_factory):
    """(preprocessor, booster, folder with preprocessor.tar.gz and xgboost.tar.gz, raw training rows)."""
    folder = tmp_path_factory.mktemp("pipeline-models")
    prep, booster, rows = build_parts(folder)
    return prep, booster, folder, rows


@pytest.fixture(scope="module")
def module_session(tmp_path_factory):
    """A Session in a home of this module's own, for endpoints that serve several tests."""
    from nbsage.session import Session
    return Session(home=tmp_path_factory.mktemp("nbsage-home"))
