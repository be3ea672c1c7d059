"""Where channel data comes from: DataFrames, NumPy and scipy arrays, SQL (DuckDB and SQLAlchemy),
files, folders and URLs; `upload_data`, `load`, `sql`; and `%sm_load` / `%%sm_sql` as a user types
them in a real IPython shell."""
from __future__ import annotations

import functools
import gzip
import http.server
import sqlite3
import tarfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from IPython.core.error import UsageError

import nbsage
from nbsage.data import Query, QueryError, load, sql, upload_data
from nbsage.errors import ChannelError
from nbsage.estimator import Estimator
from nbsage.formats import read_table
from nbsage.inputs import TrainingInput, channel_request
from nbsage.session import Session

FRAME = pd.DataFrame({"label": [0.0, 1.0, 0.0, 1.0], "x1": [1.0, 2.0, 3.0, 4.0], "x2": [0.5, 0.25, 0.0, 2.0]})


def staged(tmp_path, value, content_type=None, **kw) -> dict:
    return channel_request("train", TrainingInput(value, content_type=content_type, **kw), tmp_path / "staging")


def source_path(cfg: dict) -> Path:
    return Path(cfg["DataSource"]["S3DataSource"]["S3Uri"])


# ---- in-memory data written as the channel's content type --------------------------------------
@pytest.mark.parametrize("content_type", ["text/csv", "text/libsvm", "application/x-parquet",
                                          "application/x-recordio-protobuf"])
def test_dataframe_channel_is_written_as_its_content_type_with_the_label_first(tmp_path, content_type):
    cfg = staged(tmp_path, FRAME, content_type)
    assert cfg["ContentType"] == content_type
    if content_type == "application/x-parquet":
        back = pd.read_parquet(source_path(cfg))
        assert back.to_numpy().tolist() == FRAME.to_numpy().tolist()
        return
    table = read_table([source_path(cfg)], content_type)
    assert table.labels.tolist() == [0, 1, 0, 1]
    dense = table.features.toarray() if hasattr(table.features, "toarray") else table.features
    assert np.allclose(dense[:, :2], FRAME[["x1", "x2"]].to_numpy()[:, : dense.shape[1]][:, :2])


def test_scipy_sparse_pair_is_written_as_sparse_recordio_protobuf(tmp_path):
    features = sp.random(20, 50, density=0.1, format="csr", random_state=0, dtype=np.float32)
    labels = np.arange(20) % 2
    cfg = staged(tmp_path, (features, labels), "application/x-recordio-protobuf")
    table = read_table([source_path(cfg)], "application/x-recordio-protobuf")
    assert hasattr(table.features, "tocsr")
    assert np.allclose(table.features.toarray(), features.toarray()) and table.labels.tolist() == labels.tolist()


def test_numpy_array_is_written_as_headerless_csv_and_gzipped_when_asked(tmp_path):
    cfg = staged(tmp_path, np.array([[1, 2.5], [0, 3.5]]), "text/csv", compression="Gzip")
    path = source_path(cfg)
    assert path.name == "train.csv.gz" and cfg["CompressionType"] == "Gzip"
    assert gzip.decompress(path.read_bytes()).decode().splitlines() == ["1.0,2.5", "0.0,3.5"]


def test_in_memory_data_in_a_content_type_that_cannot_be_written_is_refused(tmp_path):
    with pytest.raises(ChannelError, match="cannot write in-memory data as 'image/png'.*text/csv"):
        staged(tmp_path, FRAME, "image/png")


def test_duckdb_relation_and_arrow_table_are_channel_sources(tmp_path):
    import duckdb
    import pyarrow as pa
    relation = duckdb.sql("SELECT 1.0 AS label, 2.0 AS x UNION ALL SELECT 0.0, 3.0 ORDER BY x")
    assert source_path(staged(tmp_path / "a", relation)).read_text() == "1.0,2.0\n0.0,3.0\n"
    arrow = pa.table({"label": [1, 0], "x": [5, 6]})
    assert source_path(staged(tmp_path / "b", arrow)).read_text() == "1,5\n0,6\n"


def test_sql_query_channel_is_run_when_the_job_is_created(tmp_path):
    db = tmp_path / "rows.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (label REAL, x REAL)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, 10), (0, 20), (1, 30)])
    query = Query("SELECT label, x FROM t WHERE x > :low ORDER BY x", f"sqlite:///{db}", params={"low": 15})
    assert source_path(staged(tmp_path, query)).read_text() == "0.0,20.0\n1.0,30.0\n"


def test_a_job_trains_on_a_sql_result_written_as_csv(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        "import os, shutil\n"
        "d = os.environ['SM_CHANNEL_TRAIN']\n"
        "for n in os.listdir(d): shutil.copy(os.path.join(d, n), os.environ['SM_MODEL_DIR'])\n")
    people = pd.DataFrame({"age": [30, 40, 50], "score": [1.0, 0.0, 1.0]})  # queried by name in DuckDB
    job = Estimator(entry_point="train.py", source_dir=str(src)).fit(
        {"train": Query("SELECT score, age FROM people WHERE age > 35 ORDER BY age")}, logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    with tarfile.open(job.model_data) as tar:
        assert tar.extractfile("train.csv").read() == b"0.0,40\n1.0,50\n"
    del people


# ---- upload_data --------------------------------------------------------------------------------
def test_upload_data_puts_a_file_under_the_artifact_root_and_returns_its_url(tmp_path):
    f = tmp_path / "train.csv"
    f.write_text("1,2\n")
    url = upload_data(str(f), "datasets/iris")
    assert url == Session.default().artifacts.url("datasets/iris/train.csv")
    assert Path(url).read_text() == "1,2\n"


def test_upload_data_of_a_folder_returns_the_prefix_and_keeps_the_layout(tmp_path):
    folder = tmp_path / "folder"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.csv").write_text("1\n")
    (folder / "y.csv").write_text("2\n")
    url = upload_data(folder, key_prefix="many")
    assert url == Session.default().artifacts.url("many")
    assert (Path(url) / "a" / "x.csv").read_text() == "1\n" and (Path(url) / "y.csv").read_text() == "2\n"


def test_upload_data_writes_a_dataframe_as_the_content_type_at_any_fsspec_url():
    import fsspec
    url = nbsage.upload_data(FRAME, "memory://uploads/frames", content_type="application/x-parquet")
    assert url == "memory://uploads/frames/data.parquet"
    with fsspec.open(url, "rb") as f:
        assert pd.read_parquet(f).shape == (4, 3)
    fsspec.filesystem("memory").rm("/uploads", recursive=True)


# ---- load -----------------------------------------------------------------------------------------
def test_load_reads_a_folder_of_gzipped_headerless_csv_in_key_order(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        with gzip.open(folder / f"part-{i}.csv.gz", "wt") as f:
            f.write(f"{i},{i * 2}\n")
    frame = load(folder)
    assert frame.to_numpy().tolist() == [[0, 0], [1, 2], [2, 4]] and list(frame.columns) == [0, 1]


def test_load_detects_a_csv_header(tmp_path):
    (tmp_path / "h.csv").write_text("label,x\n1,2\n0,3\n")
    assert list(load(tmp_path / "h.csv").columns) == ["label", "x"]


@pytest.mark.parametrize("content_type", ["application/x-recordio-protobuf", "text/libsvm"])
def test_load_reads_sagemaker_training_formats_with_the_label_in_column_0(tmp_path, content_type):
    cfg = staged(tmp_path, FRAME, content_type)
    frame = load(source_path(cfg), content_type)
    dense = frame.sparse.to_dense() if hasattr(frame, "sparse") and any(
        isinstance(t, pd.SparseDtype) for t in frame.dtypes) else frame
    assert dense[0].tolist() == [0, 1, 0, 1]
    assert np.allclose(dense[1].to_numpy(), FRAME["x1"].to_numpy())


def test_load_of_a_file_without_a_known_suffix_asks_for_the_content_type(tmp_path):
    (tmp_path / "blob").write_text("1,2\n")
    with pytest.raises(ChannelError, match="pass content_type="):
        load(tmp_path / "blob")
    assert load(tmp_path / "blob", "text/csv").shape == (1, 2)


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on loopback serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_load_reads_an_http_url(http_root):
    www, base = http_root
    FRAME.to_parquet(www / "train.parquet")
    assert load(f"{base}/train.parquet").equals(FRAME)


def test_http_url_is_a_training_channel(http_root, tmp_path):
    www, base = http_root
    (www / "train.csv").write_text("1,2\n")
    from nbsage.backends.staging import stage_channel
    assert stage_channel(f"{base}/train.csv", tmp_path / "dest", "train") == 1
    assert (tmp_path / "dest" / "train.csv").read_text() == "1,2\n"


# ---- sql ------------------------------------------------------------------------------------------
def test_sql_on_duckdb_reads_dataframes_by_name_and_keeps_tables_between_queries():
    scores = pd.DataFrame({"name": ["a", "b", "c"], "score": [3, 1, 2]})
    top = sql("SELECT name FROM scores ORDER BY score DESC LIMIT 2")
    assert top["name"].tolist() == ["a", "c"]
    sql("CREATE OR REPLACE TABLE kept AS SELECT 42 AS answer")
    assert sql("SELECT answer FROM kept")["answer"].tolist() == [42]
    assert load("SELECT count(*) AS n FROM scores")["n"].tolist() == [3]


def test_sql_error_is_one_query_error_naming_the_database():
    with pytest.raises(QueryError, match="SQL on DuckDB .* failed: .*no_such_table"):
        sql("SELECT * FROM no_such_table")


def test_sql_on_a_sqlalchemy_url_binds_parameters(tmp_path):
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, total REAL)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 5.0), (2, 50.0), (3, 500.0)])
    frame = sql("SELECT id FROM orders WHERE total > :low ORDER BY id", f"sqlite:///{db}", params={"low": 10})
    assert frame["id"].tolist() == [2, 3]
    import sqlalchemy
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    assert sql("SELECT count(*) AS n FROM orders", engine)["n"].tolist() == [3]
    with sqlite3.connect(db) as conn:  # a DB-API connection
        assert sql("SELECT max(total) AS m FROM orders", conn)["m"].tolist() == [500.0]


def test_sql_on_a_dialect_that_is_not_installed_says_what_to_install():
    with pytest.raises(QueryError, match="pip install sqlalchemy-redshift"):
        sql("SELECT 1", "redshift+redshift_connector://user:secret@example.com:5439/dev")
    with pytest.raises(QueryError) as info:
        sql("SELECT 1", "awsathena+rest://key:secret@athena.us-east-1.amazonaws.com:443/db")
    assert "secret" not in str(info.value) and "PyAthena" in str(info.value)


# ---- the magics ---------------------------------------------------------------------------------
@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    from nbsage.notebook.data_magics import register
    start_ipython()
    ip = InteractiveShell.instance()
    register(ip)
    ip.user_ns["df"] = FRAME.copy()
    yield ip
    for name in ("df", "train", "ones", "big", "orders", "db_url", "eng"):
        ip.user_ns.pop(name, None)


def test_sm_load_puts_a_folder_into_a_notebook_variable(shell, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    FRAME.to_csv(folder / "part-0.csv", header=False, index=False)
    FRAME.to_csv(folder / "part-1.csv", header=False, index=False)
    shell.run_line_magic("sm_load", f"train {folder}")
    assert shell.user_ns["train"].shape == (8, 3)
    assert f"train: 8 rows x 3 columns from {folder}" in capsys.readouterr().out


def test_sm_load_with_a_content_type_reads_unnamed_files(shell, tmp_path):
    (tmp_path / "blob").write_bytes(b"1 0:2.5\n0 1:1.5\n")
    shell.run_line_magic("sm_load", f"train {tmp_path / 'blob'} --content-type text/libsvm")
    assert shell.user_ns["train"][0].tolist() == [1, 0]


def test_sm_load_of_a_missing_path_is_a_one_line_usage_error(shell, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        shell.run_line_magic("sm_load", f"train {tmp_path / 'nope.csv'}")


def test_sm_sql_queries_notebook_dataframes_with_duckdb(shell):
    shell.run_cell_magic("sm_sql", "ones", "SELECT x1, x2 FROM df WHERE label = 1 ORDER BY x1")
    assert shell.user_ns["ones"]["x1"].tolist() == [2.0, 4.0]


def test_sm_sql_with_con_runs_on_a_sqlalchemy_url_or_a_connection_variable(shell, tmp_path):
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, total REAL)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 5.0), (2, 50.0)])
    shell.run_cell_magic("sm_sql", f"big --con sqlite:///{db}", "SELECT id FROM orders WHERE total > 10")
    assert shell.user_ns["big"]["id"].tolist() == [2]
    import sqlalchemy
    shell.user_ns["eng"] = sqlalchemy.create_engine(f"sqlite:///{db}")
    shell.run_cell_magic("sm_sql", "orders --con eng", "SELECT * FROM orders")
    assert len(shell.user_ns["orders"]) == 2


def test_sm_sql_mistakes_are_one_line_usage_errors(shell):
    with pytest.raises(UsageError, match="no_such_table"):
        shell.run_cell_magic("sm_sql", "x", "SELECT * FROM no_such_table")
    with pytest.raises(UsageError, match="needs a query"):
        shell.run_cell_magic("sm_sql", "x", "   ")
    with pytest.raises(UsageError, match="not a valid variable name"):
        shell.run_cell_magic("sm_sql", "1x", "SELECT 1")
