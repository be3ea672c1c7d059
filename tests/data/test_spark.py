"""Spark as a data source (the `spark` extra): DataFrames as channels and uploads, SparkSession as a
SQL connection for `sql` and `%%sm_sql`. Skipped where pyspark or a Java runtime is missing."""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pandas as pd
import pytest

pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark is not installed (pip install 'nbsage[spark]')")
if not shutil.which("java"):
    pytest.skip("Spark needs a Java runtime (java is not on PATH)", allow_module_level=True)

from nbsage.data import QueryError, load, sql, upload_data  # noqa: E402
from nbsage.estimator import Estimator  # noqa: E402
from nbsage.inputs import TrainingInput, channel_request  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    session = (pyspark_sql.SparkSession.builder.master("local[1]").appName("nbsage-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def people(spark):
    frame = spark.createDataFrame([(1.0, 30.0), (0.0, 40.0), (1.0, 50.0)], ["label", "age"])
    frame.createOrReplaceTempView("people")
    return frame


def test_spark_dataframe_is_a_channel_source_written_as_the_content_type(tmp_path, people):
    cfg = channel_request("train", TrainingInput(people), tmp_path / "staging")
    assert Path(cfg["DataSource"]["S3DataSource"]["S3Uri"]).read_text() == "1.0,30.0\n0.0,40.0\n1.0,50.0\n"
    cfg = channel_request("train", TrainingInput(people, content_type="application/x-parquet"), tmp_path / "pq")
    assert pd.read_parquet(cfg["DataSource"]["S3DataSource"]["S3Uri"])["age"].tolist() == [30.0, 40.0, 50.0]
    assert load(people).shape == (3, 2)


def test_a_job_trains_on_a_spark_dataframe(tmp_path, people):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        "import os, shutil\n"
        "d = os.environ['SM_CHANNEL_TRAIN']\n"
        "for n in os.listdir(d): shutil.copy(os.path.join(d, n), os.environ['SM_MODEL_DIR'])\n")
    job = Estimator(entry_point="train.py", source_dir=str(src)).fit({"train": people.where("age > 35")}, logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    with tarfile.open(job.model_data) as tar:
        (name,) = tar.getnames()
        assert tar.extractfile(name).read() == b"0.0,40.0\n1.0,50.0\n"


def test_upload_data_writes_a_spark_dataframe_as_the_content_type():
    import fsspec
    frame = pyspark_sql.SparkSession.getActiveSession().createDataFrame([(0.0, 1.5), (1.0, 2.5)], ["y", "x"])
    url = upload_data(frame, "memory://uploads/spark", content_type="application/x-parquet")
    with fsspec.open(url, "rb") as f:
        assert pd.read_parquet(f)["x"].tolist() == [1.5, 2.5]
    fsspec.filesystem("memory").rm("/uploads", recursive=True)


def test_sql_on_a_spark_session_binds_parameters(spark, people):
    rows = sql("SELECT age FROM people WHERE label = :label ORDER BY age", spark, params={"label": 1.0})
    assert rows["age"].tolist() == [30.0, 50.0]


def test_spark_sql_error_is_one_query_error_naming_spark(spark):
    with pytest.raises(QueryError, match=r"SQL on Spark \(local\[1\]\) failed: .*no_such_table") as info:
        sql("SELECT * FROM no_such_table", spark)
    assert "\n" not in str(info.value)
    assert sql("SELECT 1 AS one", spark)["one"].tolist() == [1]  # the session still works


def test_sm_sql_runs_on_a_spark_session_variable(spark, people):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    from nbsage.notebook.data_magics import register
    start_ipython()
    ip = InteractiveShell.instance()
    register(ip)
    ip.user_ns["spark"] = spark
    try:
        ip.run_cell_magic("sm_sql", "older --con spark", "SELECT age FROM people WHERE age >= 40 ORDER BY age")
        assert ip.user_ns["older"]["age"].tolist() == [40.0, 50.0]
    finally:
        for name in ("spark", "older"):
            ip.user_ns.pop(name, None)
