"""Data in and out of the notebook: `upload_data`, `load` and `sql`.

- `upload_data(obj, prefix)` puts a file, a folder or data in memory (DataFrame, array, sparse
  matrix, (X, y), SQL result, Spark DataFrame) where jobs read it — under the session's artifact
  root by default, or in a bucket / at any fsspec URL — and returns its URL, as
  `sagemaker.Session().upload_data` does.
- `load(src)` reads any source into a pandas DataFrame: a path or folder, any fsspec URL
  (s3://, gs://, http(s)://, memory://), a SQL query, or data already in memory.
- `sql(query, con=None)` runs SQL: on an embedded DuckDB database by default (notebook
  DataFrames can be queried by name), or on any SQLAlchemy URL or engine (PostgreSQL,
  Redshift-style `redshift+redshift_connector://`, Athena-style `awsathena+rest://`, SQLite, ...),
  a DB-API connection, a DuckDB connection or a SparkSession.
  `Query(query, con)` is the same query run later — a channel whose data is a query result.

Credentials and endpoints for remote URLs come from the usual places (AWS_* environment variables,
~/.aws, fsspec configuration); nbsage adds none of its own.
"""
from __future__ import annotations

import gzip
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from nbsage.errors import ChannelError, NBSageError, ValidationError


class QueryError(NBSageError):
    """A SQL query could not be run; the message names the connection and the database's reason."""


# ---- upload_data ----------------------------------------------------------------------------------
def _destination(prefix: str | None, bucket: str | None, key_prefix: str | None, session) -> str:
    from nbsage.store.artifacts import join
    if prefix and key_prefix and prefix != key_prefix:
        raise ValidationError("upload_data: give the prefix once (prefix= or key_prefix=), not both")
    prefix = prefix or key_prefix
    if prefix and ("://" in prefix or os.path.isabs(os.path.expanduser(prefix))):
        if bucket:
            raise ValidationError(f"upload_data: prefix {prefix!r} is a full location; leave bucket out, "
                                  "or give a key prefix relative to the bucket")
        return prefix.rstrip("/")
    if bucket:
        base = bucket if "://" in bucket else f"s3://{bucket}"
        return join(base, prefix or "data")
    if session is None:
        from nbsage.session import Session
        session = Session.default()
    return session.artifacts.url(prefix or "data")


def _put(local: Path, url: str, extra_args: dict | None) -> str:
    from nbsage.store.artifacts import ArtifactStore, is_local, local_path
    if extra_args and not is_local(url) and url.startswith(("s3://", "s3a://")):
        import fsspec
        fs, path = fsspec.core.url_to_fs(url)
        fs.put_file(str(local), path, **extra_args)
        return url
    if is_local(url):
        url = str(Path(local_path(url)).expanduser().resolve())
    return ArtifactStore(url).put_file(local, url)


def upload_data(path: Any, prefix: str | None = None, bucket: str | None = None, content_type: str | None = None,
                session=None, *, key_prefix: str | None = None, extra_args: dict | None = None,
                name: str = "data") -> str:
    """Upload a file, a folder or data in memory; return its URL (a folder's prefix, a file's own URL).

    prefix: a key prefix under `bucket` (s3://bucket/prefix) or under the session's artifact root
    (default "data"), or a full URL / absolute path. Data in memory is written as `content_type`
    (default text/csv: no header, label first) to `<prefix>/<name>.<ext>`. extra_args go to the S3
    PUT (e.g. {"ServerSideEncryption": "AES256"}), as in the SDK.
    """
    from nbsage.store.artifacts import join
    dest = _destination(prefix, bucket, key_prefix, session)
    from nbsage.inputs import _is_in_memory, write_in_memory
    if _is_in_memory(path) or isinstance(path, Query):
        with tempfile.TemporaryDirectory(prefix="nbsage-upload-") as tmp:
            written, _ = write_in_memory(path, Path(tmp), name, content_type)
            return _put(Path(written), join(dest, Path(written).name), extra_args)
    if not isinstance(path, (str, os.PathLike)):
        raise ChannelError(f"upload_data: {type(path).__name__} cannot be uploaded; pass a path, a URL, a DataFrame, "
                           "an array, a sparse matrix, an (X, y) pair or a SQL result")
    src = str(path)
    from nbsage.backends.staging import list_channel_objects
    from nbsage.store.artifacts import is_local
    if is_local(src):
        local = Path(src.removeprefix("file://")).expanduser()
        if not local.exists():
            raise ChannelError(f"upload_data: {src} does not exist")
        if local.is_file():
            return _put(local, join(dest, local.name), extra_args)
    objects = list_channel_objects(src, "upload")
    single = len(objects) == 1 and not (is_local(src) and Path(src).expanduser().is_dir())
    with tempfile.TemporaryDirectory(prefix="nbsage-upload-") as tmp:
        from nbsage.paths import landing_path  # a key that climbs out of its folder is refused, none uploaded
        landed = [landing_path(tmp, o.key, what=f"upload_data {src}", error=ChannelError) for o in objects]
        for obj, staged in zip(objects, landed):
            if obj.local:
                _put(Path(obj.url), join(dest, obj.key), extra_args)
                continue
            staged.parent.mkdir(parents=True, exist_ok=True)
            obj.fs.get_file(obj.path, str(staged))
            _put(staged, join(dest, obj.key), extra_args)
    return join(dest, objects[0].key) if single else dest


# ---- load -----------------------------------------------------------------------------------------
_SQL_START = re.compile(r"^\s*(select|with|from|show|describe|pragma|values|table)\s", re.IGNORECASE)


def _read_object(data: bytes, key: str, content_type: str, header):
    from nbsage import formats
    from nbsage.errors import UnsupportedContentType
    try:
        return formats.read_frame(data, key, content_type, header)
    except UnsupportedContentType as e:
        raise ChannelError(f"load: {e}") from None


def _in_memory_frame(obj):
    import numpy as np
    import pandas as pd
    from nbsage.formats import label_first_frame
    from nbsage.inputs import _labelled_matrix, is_table_like, to_frame
    if isinstance(obj, pd.DataFrame):
        return obj
    if isinstance(obj, pd.Series):
        return obj.to_frame()
    if isinstance(obj, tuple):
        matrix = _labelled_matrix(obj, "load")
        return label_first_frame(matrix[:, 1:], matrix[:, 0].toarray().ravel() if hasattr(matrix, "tocsr")
                                 else matrix[:, 0])
    if is_table_like(obj):
        return to_frame(obj)
    if hasattr(obj, "tocsr"):
        return pd.DataFrame.sparse.from_spmatrix(obj)
    arr = np.asarray(obj)
    return pd.DataFrame(arr.reshape(-1, 1) if arr.ndim == 1 else arr)


def load(src: Any, content_type: str | None = None, *, header: bool | None = None, con=None):
    """A pandas DataFrame from any source.

    src: a local file or folder, an fsspec URL (s3://bucket/prefix/, https://..., memory://...),
    a SQL query string (run by `sql`, on `con`), a `Query`, or data in memory (DataFrame, array,
    sparse matrix, (X, y), DuckDB/Arrow/polars/Spark table). A folder's files are read in key order
    and stacked. content_type defaults to what each file's suffix says (`.csv`, `.csv.gz`,
    `.parquet`, `.libsvm`, `.jsonl`, `.pbr`/`.rec` for RecordIO-protobuf). CSV headers are
    detected (header=True/False overrides); headerless, label-first data (SageMaker's training
    format) gets columns 0, 1, ... with the label in column 0, and so do libsvm and RecordIO-protobuf.
    """
    import pandas as pd
    if isinstance(src, Query):
        return src.to_pandas()
    if not isinstance(src, (str, os.PathLike)):
        return _in_memory_frame(src)
    text = str(src)
    from nbsage.store.artifacts import is_local
    if "://" not in text and _SQL_START.match(text) and not Path(text).expanduser().exists():
        return sql(text, con=con, namespace=_caller_namespace())
    from nbsage import formats
    from nbsage.backends.staging import list_channel_objects
    if is_local(text) and not Path(text.removeprefix("file://")).expanduser().exists():
        raise ChannelError(f"load: {text} does not exist (give a path, a URL such as s3://bucket/prefix/, "
                           "or a SQL query)")
    frames = []
    for obj in list_channel_objects(text, "load"):
        ct = content_type or formats.content_type_of(obj.key)
        if not ct:
            raise ChannelError(f"load: cannot tell the content type of {obj.url} from its name; pass "
                               "content_type= (text/csv, text/libsvm, application/x-parquet, "
                               "application/jsonlines or application/x-recordio-protobuf)")
        with obj.open() as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if not data.strip():
            continue
        frames.append(_read_object(data, obj.key, ct, header))
    if not frames:
        raise ChannelError(f"load: {text} holds no data")
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


# ---- sql ------------------------------------------------------------------------------------------
_duckdb_default = None
_engines: dict[str, Any] = {}

# SQLAlchemy dialect -> what to pip install for it
_DIALECT_PACKAGES = {
    "postgresql": "psycopg2-binary", "postgres": "psycopg2-binary",
    "redshift": "sqlalchemy-redshift redshift_connector",
    "awsathena": '"PyAthena[SQLAlchemy]"',
    "mysql": "pymysql", "mariadb": "pymysql",
    "snowflake": "snowflake-sqlalchemy",
    "bigquery": "sqlalchemy-bigquery",
    "mssql": "pyodbc", "oracle": "oracledb",
}


def _caller_namespace(depth: int = 2) -> dict:
    frame = sys._getframe(depth)
    return {**frame.f_globals, **frame.f_locals}


def _duckdb_connection(target: str | None = None):
    global _duckdb_default
    try:
        import duckdb
    except ImportError:
        raise QueryError("SQL without a connection runs on DuckDB, which is not installed: pip install duckdb") from None
    if target:
        return duckdb.connect(target)
    if _duckdb_default is None:
        _duckdb_default = duckdb.connect()  # in memory; tables created by one query stay for the next
    return _duckdb_default


def _registrable(value) -> bool:
    """Tables DuckDB can scan when a query names them: DataFrames, Arrow and polars tables, 2-D arrays."""
    root = (type(value).__module__ or "").split(".")[0]
    if root == "numpy":
        return getattr(value, "ndim", 0) == 2
    if root == "pandas":
        return type(value).__name__ == "DataFrame"
    return (root, type(value).__name__) in {("pyarrow", "Table"), ("pyarrow", "RecordBatch"),
                                            ("polars", "DataFrame"), ("polars", "LazyFrame")}


def _run_duckdb(conn, query: str, params, namespace: dict | None, where: str):
    cursor = conn.cursor()
    try:
        for word in set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query)):
            value = (namespace or {}).get(word)
            if value is not None and _registrable(value):
                if (type(value).__module__ or "").startswith("numpy"):
                    import pandas as pd
                    value = pd.DataFrame(value)
                cursor.register(word, value)
        import duckdb
        try:
            return cursor.execute(query, params).df() if params is not None else cursor.execute(query).df()
        except duckdb.Error as e:
            raise QueryError(f"SQL on {where} failed: {' '.join(str(e).split())}") from None
    finally:
        cursor.close()


def _run_spark(spark, query: str, params):
    """A SparkSession's query as a DataFrame; Spark's analysis and parse errors as one QueryError."""
    try:
        result = spark.sql(query, args=params) if params else spark.sql(query)
        return result.toPandas()
    except Exception as e:
        if not (type(e).__module__ or "").startswith(("pyspark", "py4j")):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QueryError(f"SQL on Spark ({spark.sparkContext.master}) failed: {first}") from None


def _engine(url: str):
    try:
        import sqlalchemy
    except ImportError:
        raise QueryError(f"connecting to {url!r} needs SQLAlchemy: pip install sqlalchemy") from None
    if url not in _engines:
        try:
            _engines[url] = sqlalchemy.create_engine(url)
        except sqlalchemy.exc.NoSuchModuleError:
            dialect = url.split(":", 1)[0].split("+", 1)[0]
            package = _DIALECT_PACKAGES.get(dialect, f"the SQLAlchemy dialect for {dialect!r}")
            raise QueryError(f"connection {_redact(url)}: the SQLAlchemy dialect {dialect!r} is not installed; "
                             f"pip install {package}") from None
        except ImportError as e:
            dialect = url.split(":", 1)[0]
            raise QueryError(f"connection {_redact(url)}: the database driver is not installed ({e}); "
                             f"pip install {_DIALECT_PACKAGES.get(dialect.split('+')[0], e.name or 'the driver')}") from None
        except sqlalchemy.exc.ArgumentError as e:
            raise QueryError(f"connection {url!r} is not a SQLAlchemy URL ({e}); use e.g. "
                             "postgresql://user@host/db, sqlite:///file.db, or duckdb:///file.duckdb") from None
    return _engines[url]


def _redact(url: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def _run_sqlalchemy(connectable, query: str, params, where: str):
    import pandas as pd
    import sqlalchemy
    try:
        if isinstance(connectable, sqlalchemy.engine.Engine):
            with connectable.connect() as conn:
                return pd.read_sql_query(sqlalchemy.text(query), conn, params=params)
        return pd.read_sql_query(sqlalchemy.text(query), connectable, params=params)
    except sqlalchemy.exc.SQLAlchemyError as e:
        reason = " ".join(str(getattr(e, "orig", None) or e).split())
        raise QueryError(f"SQL on {where} failed: {reason}") from None


def sql(query: str, con=None, *, params=None, namespace: dict | None = None):
    """Run a SQL query; return the result as a pandas DataFrame.

    con: None (the embedded DuckDB database, kept for the session: notebook DataFrames, Arrow
    tables and 2-D arrays named in the query are readable as tables), a URL — `duckdb:///path`
    or a SQLAlchemy URL (postgresql://..., redshift+redshift_connector://..., awsathena+rest://...,
    sqlite:///file.db) — or a connection object: SQLAlchemy engine/connection, DuckDB connection,
    DB-API connection (sqlite3, psycopg, ...) or SparkSession. params are bound by the driver.
    namespace: where names in the query are looked up for DuckDB (default: the caller's variables).
    """
    if not isinstance(query, str) or not query.strip():
        raise ValidationError("sql: the query is empty")
    if con is None or (isinstance(con, str) and con.strip() in ("", "duckdb://", "duckdb:///:memory:")):
        ns = namespace if namespace is not None else _caller_namespace()
        return _run_duckdb(_duckdb_connection(), query, params, ns, "DuckDB (in memory)")
    if isinstance(con, str):
        url = con.strip()
        if url.startswith("duckdb:///"):
            ns = namespace if namespace is not None else _caller_namespace()
            conn = _duckdb_connection(url[len("duckdb:///"):])
            try:
                return _run_duckdb(conn, query, params, ns, f"DuckDB {url[len('duckdb:///'):]}")
            finally:
                conn.close()
        return _run_sqlalchemy(_engine(url), query, params, _redact(url))
    mod = type(con).__module__ or ""
    if mod.startswith("duckdb"):
        ns = namespace if namespace is not None else _caller_namespace()
        return _run_duckdb(con, query, params, ns, "DuckDB")
    if mod.startswith("sqlalchemy"):
        return _run_sqlalchemy(con, query, params, "the SQLAlchemy connection")
    if mod.startswith("pyspark") and hasattr(con, "sql"):
        return _run_spark(con, query, params)
    if hasattr(con, "cursor"):
        import warnings

        import pandas as pd
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # pandas prefers SQLAlchemy; DB-API works
                return pd.read_sql_query(query, con, params=params)
        except Exception as e:
            if type(e).__name__ in ("DatabaseError", "OperationalError", "ProgrammingError"):
                raise QueryError(f"SQL on the {mod.split('.')[0]} connection failed: {' '.join(str(e).split())}") from None
            raise
    raise ValidationError(f"sql: con {type(con).__name__} is not a connection; pass a SQLAlchemy URL or engine, "
                          "a DuckDB or DB-API connection, a SparkSession, or nothing for DuckDB")


class Query:
    """A SQL query whose result is used later: as a channel's data (run when the job is created),
    with `load`, or with `upload_data`."""

    def __init__(self, query: str, con=None, *, params=None, namespace: dict | None = None):
        self.query, self.con, self.params = query, con, params
        self.namespace = namespace if namespace is not None else _caller_namespace()

    def to_pandas(self):
        return sql(self.query, self.con, params=self.params, namespace=self.namespace)

    def __repr__(self) -> str:
        con = self.con if isinstance(self.con, str) or self.con is None else type(self.con).__name__
        return f"Query({' '.join(self.query.split())[:60]!r}, con={_redact(con) if isinstance(con, str) else con!r})"
