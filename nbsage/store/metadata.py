"""Job, metric, log and endpoint records in one SQLite file under NBSAGE_HOME.

Several kernels, job supervisors and the CLI use the same file at once: WAL journaling, a busy
timeout, one short transaction per write, and a connection per process (and per thread).

Every sqlite3 error leaves this module as one nbsage.errors.StoreError naming NBSAGE_HOME and the
cause (full, read-only, locked), never as a raw sqlite3.OperationalError (`store_error`). Where
NBSAGE_HOME cannot be written (a read-only mount, a folder without write permission) the store is
opened read-only, so `nbsage jobs`, `describe` and `logs` still work, and a write says why not.
"""
from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from nbsage.errors import EndpointError, JobError, StoreError
from nbsage.runtime.layout import private_dir, private_file, tighten

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, secondary_status TEXT NOT NULL,
    request TEXT NOT NULL, backend TEXT NOT NULL, root TEXT, supervisor_pid INTEGER, runtime_pid INTEGER,
    failure_reason TEXT, model_artifacts TEXT, output_artifacts TEXT,
    creation_time REAL NOT NULL, start_time REAL, end_time REAL, last_modified REAL NOT NULL,
    stop_requested INTEGER NOT NULL DEFAULT 0, progress_step INTEGER, progress_total INTEGER,
    billable_seconds REAL
);
CREATE TABLE IF NOT EXISTS transitions (
    job TEXT NOT NULL, status TEXT NOT NULL, start_time REAL NOT NULL, end_time REAL, message TEXT
);
CREATE INDEX IF NOT EXISTS transitions_job ON transitions(job);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL, step INTEGER, timestamp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_job ON metrics(job, id);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, timestamp REAL NOT NULL, line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_job ON logs(job, seq);
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY, status TEXT NOT NULL, config TEXT NOT NULL, host TEXT, port INTEGER,
    pid INTEGER, failure_reason TEXT, creation_time REAL NOT NULL, last_modified REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY, config TEXT NOT NULL, creation_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoint_configs (
    name TEXT PRIMARY KEY, config TEXT NOT NULL, creation_time REAL NOT NULL
);
"""

TERMINAL = ("Completed", "Failed", "Stopped")


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat() if ts else None


_HAS_PROC = os.path.isdir("/proc/self")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not _HAS_PROC:
        return True  # no /proc (macOS): the signal check said it lives
    # a zombie child of this process counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False  # reaped between the signal check and the read
    except OSError:
        return True


def _cause(error: BaseException) -> str:
    """'full', 'read-only', 'locked' or 'unavailable': why the store could not be used."""
    if isinstance(error, OSError):
        return {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EROFS: "read-only",
                errno.EACCES: "read-only", errno.EPERM: "read-only"}.get(error.errno, "unavailable")
    name, text = getattr(error, "sqlite_errorname", "") or "", str(error).lower()
    if name.startswith("SQLITE_FULL") or "is full" in text:
        return "full"
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return "read-only"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return "locked"
    return "unavailable"


_ADVICE = {
    "full": "is full: nothing more can be written there; free some space (or point NBSAGE_HOME at another disk)",
    "read-only": "is read-only: the job store can be read (nbsage jobs, describe, logs) but not written; "
                 "make it writable or point NBSAGE_HOME at a writable folder",
    "locked": "has its job store locked by another process for longer than the 30 s busy timeout; "
              "retry, or end the process that holds it",
    "unavailable": "has a job store that cannot be used",
}


def store_error(error: BaseException, path: Path) -> StoreError:
    """A sqlite3 (or file system) error of the store at `path`, in words: which NBSAGE_HOME, and why."""
    cause = _cause(error)
    if cause == "unavailable" and isinstance(error, sqlite3.Error):  # a disk I/O error on a full disk
        try:
            import shutil
            if shutil.disk_usage(path.parent).free < 64 * 1024:
                cause = "full"
        except OSError:
            pass
    home = str(path.parent)
    where = f"{path.name}: " if isinstance(error, sqlite3.Error) else ""
    return StoreError(f"NBSAGE_HOME {home} {_ADVICE[cause]} ({where}{error})", cause, home)


class MetadataStore:
    """The SQLite store. Cheap to create; one per Session (and per supervisor process).

    `read_only` is True when NBSAGE_HOME cannot be written: reads work, writes raise StoreError.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            private_dir(self.path.parent)
        except OSError as e:
            error = store_error(e, self.path)
            if error.cause != "read-only":  # where it cannot be made, it is read-only (and empty)
                raise error from e
        self._local = threading.local()
        self.read_only = not self._writable()
        if self.read_only:
            self._query("SELECT 1 FROM jobs LIMIT 1")  # readable at least, or StoreError now
            return
        try:
            self._sql(lambda conn: conn.executescript(SCHEMA))
            self._add_columns()
        except StoreError as e:  # written off by the file system after all (a read-only mount as root)
            if e.cause != "read-only":
                raise
            self.read_only, self._local = True, threading.local()
            self._query("SELECT 1 FROM jobs LIMIT 1")

    def _writable(self) -> bool:
        """Can this process write the store's folder and file? (a read-only mount says no even to root)"""
        folder = self.path.parent
        return os.access(folder, os.W_OK) and (not self.path.exists() or os.access(self.path, os.W_OK))

    def _sql(self, work):
        """`work(connection)`, with sqlite3's errors turned into StoreError — the one place they are.
        IntegrityError stays as it is: the callers turn it into "already exists"."""
        try:
            return work(self._conn())
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as e:
            raise store_error(e, self.path) from e

    # columns added after the first release: stores made before them get them here
    ADDED_COLUMNS = {"jobs": (("billable_seconds", "REAL"), ("parent", "TEXT"))}  # parent: a trial's tuning job

    def _add_columns(self) -> None:
        for table, columns in self.ADDED_COLUMNS.items():
            have = {r["name"] for r in self._query(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in have:
                    try:
                        self._conn().execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError as e:  # another process added it first
                        if "duplicate column" not in str(e):
                            raise store_error(e, self.path) from e

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._open_read_only() if self.read_only else self._open()
            conn.row_factory = sqlite3.Row
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            private_file(self.path)  # 0600; SQLite gives its -wal and -shm files the database's mode
            for side in ("-wal", "-shm"):  # made by an older nbsage with the umask's mode
                tighten(f"{self.path}{side}", 0o600)
        except OSError as e:
            raise store_error(e, self.path) from e
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """`mode=ro`; `immutable=1` where the WAL's shared-memory file cannot be created; an empty
        store in memory when NBSAGE_HOME holds none yet (nothing to list)."""
        if not self.path.exists():
            conn = sqlite3.connect(":memory:", isolation_level=None)
            conn.executescript(SCHEMA)
            return conn
        uri = f"file:{quote(str(self.path))}"
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
        try:
            conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            conn.close()
            conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
        return conn

    class _Tx:
        def __init__(self, store: "MetadataStore"):
            self.store = store

        def __enter__(self):
            self.conn = self.store._sql(lambda conn: conn)
            self.store._sql(lambda conn: conn.execute("BEGIN IMMEDIATE"))
            return self.conn

        def __exit__(self, exc_type, exc, tb):
            if exc_type is None:
                self.store._sql(lambda conn: conn.execute("COMMIT"))
                return False
            if self.conn.in_transaction:  # sqlite may have rolled back by itself (a full disk)
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                raise store_error(exc, self.store.path) from exc
            return False

    def _tx(self):
        if self.read_only:
            raise store_error(sqlite3.OperationalError("attempt to write a readonly database"), self.path)
        return self._Tx(self)

    def _query(self, sql: str, args=()) -> list[sqlite3.Row]:
        return self._sql(lambda conn: conn.execute(sql, args).fetchall())

    # ---- jobs -------------------------------------------------------------------------------
    def create_job(self, name: str, request: dict, backend: str, root: str | None, kind: str = "training",
                   parent: str | None = None) -> None:
        now = time.time()
        try:
            with self._tx() as db:
                db.execute("INSERT INTO jobs (name, kind, status, secondary_status, request, backend, root,"
                           " creation_time, last_modified, parent) VALUES (?, ?, 'InProgress', 'Starting', ?, ?, ?, ?, ?, ?)",
                           (name, kind, json.dumps(request), backend, root, now, now, parent))
                db.execute("INSERT INTO transitions (job, status, start_time, message) VALUES (?, 'Starting', ?, ?)",
                           (name, now, "Preparing the instances for training"))
        except sqlite3.IntegrityError:
            raise JobError(f"a job named {name!r} already exists; job names must be unique "
                           "(leave the name out to get a generated one)") from None

    def get_job(self, name: str) -> dict:
        rows = self._query("SELECT * FROM jobs WHERE name = ?", (name,))
        if not rows:
            raise JobError(f"no job named {name!r}" + self._suggest_job(name))
        return dict(rows[0])

    def _suggest_job(self, name: str) -> str:
        from nbsage.errors import did_you_mean
        names = [r["name"] for r in self._query("SELECT name FROM jobs ORDER BY creation_time DESC LIMIT 200")]
        return did_you_mean(name, names)

    def list_jobs(self, limit: int = 50, kind: str | None = None) -> list[dict]:
        sql = "SELECT * FROM jobs" + (" WHERE kind = ?" if kind else "") + " ORDER BY creation_time DESC LIMIT ?"
        return [dict(r) for r in self._query(sql, ((kind,) if kind else ()) + (limit,))]

    def children(self, parent: str) -> list[dict]:
        """The jobs started on behalf of `parent` (a tuning job's trials), oldest first."""
        return [dict(r) for r in self._query("SELECT * FROM jobs WHERE parent = ? ORDER BY creation_time, rowid",
                                             (parent,))]

    def jobs_in_progress(self) -> list[dict]:
        """Every job not yet ended (InProgress or Stopping), for nbsage.backends.reconciler."""
        return [dict(r) for r in self._query("SELECT * FROM jobs WHERE status IN ('InProgress', 'Stopping')")]

    def update_job(self, name: str, **fields) -> None:
        if not fields:
            return
        fields["last_modified"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE name = ?", (*fields.values(), name))

    def set_status(self, name: str, status: str, secondary: str, message: str | None = None, **fields) -> bool:
        """Move a job to a new status; a terminal job never moves again. Returns False if it did not move."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT status, secondary_status FROM jobs WHERE name = ?", (name,)).fetchone()
            if row is None or row["status"] in TERMINAL:
                return False
            sets = {"status": status, "secondary_status": secondary, "last_modified": now, **fields}
            if status in TERMINAL:
                sets.setdefault("end_time", now)
            db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in sets)} WHERE name = ?",
                       (*sets.values(), name))
            if row["secondary_status"] != secondary:
                db.execute("UPDATE transitions SET end_time = ? WHERE job = ? AND end_time IS NULL", (now, name))
                db.execute("INSERT INTO transitions (job, status, start_time, end_time, message) VALUES (?, ?, ?, ?, ?)",
                           (name, secondary, now, now if status in TERMINAL else None, message))
            elif status in TERMINAL:
                db.execute("UPDATE transitions SET end_time = ? WHERE job = ? AND end_time IS NULL", (now, name))
        return True

    def transitions(self, name: str) -> list[dict]:
        return [dict(r) for r in self._query(
            "SELECT status, start_time, end_time, message FROM transitions WHERE job = ? ORDER BY rowid", (name,))]

    # ---- logs and metrics ---------------------------------------------------------------------
    def add_logs(self, job: str, lines: list[tuple[float, str]]) -> None:
        if lines:
            with self._tx() as db:
                db.executemany("INSERT INTO logs (job, timestamp, line) VALUES (?, ?, ?)",
                               [(job, ts, line) for ts, line in lines])

    def get_logs(self, job: str, after_seq: int = 0, limit: int | None = None) -> list[tuple[int, float, str]]:
        sql = "SELECT seq, timestamp, line FROM logs WHERE job = ? AND seq > ? ORDER BY seq"
        args: tuple = (job, after_seq)
        if limit:
            sql += " LIMIT ?"
            args += (limit,)
        return [tuple(r) for r in self._query(sql, args)]

    def add_metrics(self, job: str, values: list[tuple[str, float, int | None, float]]) -> None:
        if values:
            with self._tx() as db:
                db.executemany("INSERT INTO metrics (job, name, value, step, timestamp) VALUES (?, ?, ?, ?, ?)",
                               [(job, *v) for v in values])

    def get_metrics(self, job: str, after_id: int = 0) -> list[dict]:
        return [dict(r) for r in self._query(
            "SELECT id, name, value, step, timestamp FROM metrics WHERE job = ? AND id > ? ORDER BY id",
            (job, after_id))]

    def final_metrics(self, job: str) -> list[dict]:
        """The last value of each metric: DescribeTrainingJob.FinalMetricDataList."""
        rows = self._query(
            "SELECT name, value, timestamp FROM metrics WHERE id IN "
            "(SELECT MAX(id) FROM metrics WHERE job = ? GROUP BY name) ORDER BY name", (job,))
        return [{"MetricName": r["name"], "Value": r["value"], "Timestamp": iso(r["timestamp"])} for r in rows]

    # ---- endpoints ----------------------------------------------------------------------------
    def create_endpoint(self, name: str, config: dict) -> None:
        now = time.time()
        try:
            with self._tx() as db:
                db.execute("INSERT INTO endpoints (name, status, config, creation_time, last_modified)"
                           " VALUES (?, 'Creating', ?, ?, ?)", (name, json.dumps(config), now, now))
        except sqlite3.IntegrityError:
            raise EndpointError(f"an endpoint named {name!r} already exists; delete it first "
                                f"(Predictor('{name}').delete_endpoint() or `nbsage delete {name}`) "
                                "or choose another name") from None

    def update_endpoint(self, name: str, **fields) -> None:
        fields["last_modified"] = time.time()
        if "config" in fields and not isinstance(fields["config"], str):
            fields["config"] = json.dumps(fields["config"])
        with self._tx() as db:
            db.execute(f"UPDATE endpoints SET {', '.join(f'{k} = ?' for k in fields)} WHERE name = ?",
                       (*fields.values(), name))

    def update_endpoint_if(self, name: str, if_status: str, if_last_modified: float, **fields) -> bool:
        """update_endpoint only while the record is still `if_status` as of `if_last_modified` (what the
        caller read): two updates that both read InService cannot both start. False when it changed."""
        fields["last_modified"] = time.time()
        if "config" in fields and not isinstance(fields["config"], str):
            fields["config"] = json.dumps(fields["config"])
        with self._tx() as db:
            cursor = db.execute(f"UPDATE endpoints SET {', '.join(f'{k} = ?' for k in fields)} "
                                "WHERE name = ? AND status = ? AND last_modified = ?",
                                (*fields.values(), name, if_status, if_last_modified))
            return cursor.rowcount == 1

    def get_endpoint(self, name: str) -> dict:
        rows = self._query("SELECT * FROM endpoints WHERE name = ?", (name,))
        if not rows:
            from nbsage.errors import did_you_mean
            names = [r["name"] for r in self._query("SELECT name FROM endpoints")]
            raise EndpointError(f"no endpoint named {name!r}{did_you_mean(name, names)}")
        row = dict(rows[0])
        row["config"] = json.loads(row["config"])
        return row

    def list_endpoints(self) -> list[dict]:
        rows = [dict(r) for r in self._query("SELECT * FROM endpoints ORDER BY creation_time DESC")]
        for r in rows:
            r["config"] = json.loads(r["config"])
        return rows

    def delete_endpoint(self, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM endpoints WHERE name = ?", (name,))

    # ---- models (CreateModel: what a transform job names with ModelName) ---------------------------
    def put_model(self, name: str, config: dict) -> None:
        """Record (or replace) the model called `name`: its container (ModelDataUrl, Environment, ...)."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO models (name, config, creation_time) VALUES (?, ?, ?)",
                       (name, json.dumps(config), time.time()))

    def find_model(self, name: str) -> dict | None:
        """The recorded model's config, or None."""
        rows = self._query("SELECT config FROM models WHERE name = ?", (name,))
        return json.loads(rows[0]["config"]) if rows else None

    def model_names(self) -> list[str]:
        return [r["name"] for r in self._query("SELECT name FROM models ORDER BY creation_time DESC LIMIT 200")]

    # ---- endpoint configs (CreateEndpointConfig: production and shadow variants) --------------------
    def create_endpoint_config(self, name: str, config: dict) -> bool:
        """Record an endpoint config; False when one of that name exists (configs are immutable)."""
        try:
            with self._tx() as db:
                db.execute("INSERT INTO endpoint_configs (name, config, creation_time) VALUES (?, ?, ?)",
                           (name, json.dumps(config), time.time()))
        except sqlite3.IntegrityError:
            return False
        return True

    def find_endpoint_config(self, name: str) -> dict | None:
        rows = self._query("SELECT config, creation_time FROM endpoint_configs WHERE name = ?", (name,))
        if not rows:
            return None
        return {**json.loads(rows[0]["config"]), "CreationTime": rows[0]["creation_time"]}

    def endpoint_config_names(self) -> list[str]:
        return [r["name"] for r in self._query("SELECT name FROM endpoint_configs ORDER BY creation_time DESC")]

    def delete_endpoint_config(self, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM endpoint_configs WHERE name = ?", (name,))
