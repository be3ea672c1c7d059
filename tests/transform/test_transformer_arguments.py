"""Transformer takes its arguments as the other SDK-shaped classes do: the default bucket's s3:// URIs are the
artifact store's, and a keyword it does not know is an error naming it."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from nbsage.errors import ValidationError
from nbsage.model import Model
from nbsage.transformer import Transformer

pytestmark = pytest.mark.filterwarnings("ignore:.*UBJSON:UserWarning")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model.tar.gz, booster, rows) of a 3-feature XGBoost model."""
    import xgboost as xgb
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(3)
    X = np.round(rng.normal(size=(80, 3)), 4)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(X, label=(X[:, 0] > 0).astype(float)), 3)
    booster.save_model(str(folder / "xgboost-model"))
    with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
        tar.add(folder / "xgboost-model", arcname="xgboost-model")
    return folder / "model.tar.gz", booster, X


def test_default_bucket_uris_for_data_and_output_path_are_the_artifact_stores(session, trained, tmp_path):
    import xgboost as xgb
    archive, booster, X = trained
    (tmp_path / "rows").mkdir()
    (tmp_path / "rows" / "part-0.csv").write_text("".join(",".join(f"{v:g}" for v in r) + "\n" for r in X))
    data = session.upload_data(str(tmp_path / "rows"), key_prefix="transform-in")
    bucket = session.default_bucket()
    assert data == f"s3://{bucket}/transform-in"
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer(
        assemble_with="Line", accept="text/csv", output_path=f"s3://{bucket}/transform-out")
    job = transformer.transform(data, content_type="text/csv", split_type="Line", logs=False)

    out = Path(session.resolve_uri(f"s3://{bucket}/transform-out")) / "part-0.csv.out"
    assert job.describe()["TransformOutput"]["S3OutputPath"] == str(out.parent)
    assert transformer.output_path == f"s3://{bucket}/transform-out"  # as given, as the SDK keeps it
    predictions = np.array([float(line) for line in out.read_text().splitlines()])
    np.testing.assert_allclose(predictions, booster.predict(xgb.DMatrix(X.astype(np.float32))), rtol=1e-5)


def test_an_unknown_keyword_is_an_error_naming_it(session, trained):
    with pytest.raises(ValidationError, match=r"Transformer\(\) got an unexpected keyword argument 'acept'.*accept"):
        Transformer("some-model", 1, "local", acept="text/csv", sagemaker_session=session)
    with pytest.raises(ValidationError, match=r"unexpected keyword argument 'split_type'"):
        Model(trained[0], algorithm="xgboost", sagemaker_session=session).transformer(split_type="Line")


def test_a_places_options_are_kept_for_the_place(session):
    transformer = Transformer("some-model", 2, "local", backend="dask", scheduler="tcp://127.0.0.1:8786",
                              sagemaker_session=session)
    assert transformer.backend_options == {"scheduler": "tcp://127.0.0.1:8786"}
