"""Scalable targets, scaling policies and scaling activities, kept in the metadata store's SQLite file.

Three tables of their own, made on first use (`CREATE TABLE IF NOT EXISTS`), so a store from before
autoscaling needs no migration and the endpoint records stay as they are. Activities are Application Auto
Scaling's DescribeScalingActivities rows: when, from how many instances to how many, why, and how it ended.
"""
from __future__ import annotations

import json
import os
import time
import uuid

from nbsage.serving.autoscaling.policy import (SCALABLE_DIMENSION, SERVICE_NAMESPACE, ScalableTarget,
                                               TargetTrackingPolicy, resource_id)
from nbsage.store.metadata import iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS scalable_targets (
    resource_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, variant TEXT NOT NULL,
    min_capacity INTEGER NOT NULL, max_capacity INTEGER NOT NULL, options TEXT NOT NULL DEFAULT '{}',
    creation_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS scaling_policies (
    resource_id TEXT NOT NULL, name TEXT NOT NULL, policy TEXT NOT NULL, creation_time REAL NOT NULL,
    PRIMARY KEY (resource_id, name)
);
CREATE TABLE IF NOT EXISTS scaling_activities (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, activity_id TEXT NOT NULL, resource_id TEXT NOT NULL,
    endpoint TEXT NOT NULL, from_count INTEGER NOT NULL, to_count INTEGER NOT NULL, cause TEXT NOT NULL,
    status TEXT NOT NULL, status_message TEXT, start_time REAL NOT NULL, end_time REAL
);
CREATE INDEX IF NOT EXISTS scaling_activities_endpoint ON scaling_activities(endpoint, seq);
"""


_made: set = set()  # (store file, pid) whose tables this process has made sure of


class ScalingRecords:
    """Reads and writes of the autoscaling tables, on one MetadataStore."""

    def __init__(self, store):
        self.store = store
        key = (str(store.path), os.getpid())
        if not store.read_only and key not in _made:  # once per process: describe_endpoint reads these often
            store._sql(lambda conn: conn.executescript(SCHEMA))
            _made.add(key)

    def _rows(self, sql: str, args=()) -> list[dict]:
        try:
            return [dict(r) for r in self.store._query(sql, args)]
        except Exception as e:  # a read-only store made before autoscaling has no such tables: nothing to show
            if "no such table" in str(e):
                return []
            raise

    # ---- targets ----------------------------------------------------------------------------------
    def put_target(self, target: ScalableTarget, options: dict | None = None) -> None:
        with self.store._tx() as db:
            db.execute("INSERT INTO scalable_targets (resource_id, endpoint, variant, min_capacity, max_capacity,"
                       " options, creation_time) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(resource_id) DO UPDATE"
                       " SET min_capacity = excluded.min_capacity, max_capacity = excluded.max_capacity,"
                       " options = excluded.options",
                       (target.resource_id, target.endpoint_name, target.variant_name, target.min_capacity,
                        target.max_capacity, json.dumps(options or {}), time.time()))

    def targets(self, endpoint: str | None = None) -> list[tuple[ScalableTarget, dict]]:
        """(target, row) pairs; row has 'options' (a dict) and 'creation_time'."""
        rows = self._rows("SELECT * FROM scalable_targets" + (" WHERE endpoint = ?" if endpoint else "")
                          + " ORDER BY creation_time", (endpoint,) if endpoint else ())
        out = []
        for r in rows:
            r["options"] = json.loads(r["options"] or "{}")
            out.append((ScalableTarget(r["endpoint"], r["variant"], r["min_capacity"], r["max_capacity"]), r))
        return out

    def target(self, endpoint: str, variant: str) -> tuple[ScalableTarget, dict] | None:
        found = [t for t in self.targets(endpoint) if t[0].variant_name == variant]
        return found[0] if found else None

    def delete_target(self, endpoint: str, variant: str) -> None:
        rid = resource_id(endpoint, variant)
        with self.store._tx() as db:
            db.execute("DELETE FROM scaling_policies WHERE resource_id = ?", (rid,))
            db.execute("DELETE FROM scalable_targets WHERE resource_id = ?", (rid,))

    def delete_endpoint(self, endpoint: str) -> None:
        """Forget everything about an endpoint that is gone (its activities go with it)."""
        if self.store.read_only:
            return
        with self.store._tx() as db:
            db.execute("DELETE FROM scaling_policies WHERE resource_id LIKE ?", (f"endpoint/{endpoint}/variant/%",))
            db.execute("DELETE FROM scalable_targets WHERE endpoint = ?", (endpoint,))
            db.execute("DELETE FROM scaling_activities WHERE endpoint = ?", (endpoint,))

    # ---- policies ---------------------------------------------------------------------------------
    def put_policy(self, policy: TargetTrackingPolicy) -> None:
        with self.store._tx() as db:
            db.execute("INSERT INTO scaling_policies (resource_id, name, policy, creation_time) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT(resource_id, name) DO UPDATE SET policy = excluded.policy",
                       (policy.resource_id, policy.policy_name, json.dumps(policy.to_json()), time.time()))

    def policies(self, endpoint: str | None = None, variant: str | None = None) -> list[tuple[TargetTrackingPolicy, dict]]:
        if endpoint and variant:
            rows = self._rows("SELECT * FROM scaling_policies WHERE resource_id = ? ORDER BY creation_time",
                              (resource_id(endpoint, variant),))
        elif endpoint:
            rows = self._rows("SELECT * FROM scaling_policies WHERE resource_id LIKE ? ORDER BY creation_time",
                              (f"endpoint/{endpoint}/variant/%",))
        else:
            rows = self._rows("SELECT * FROM scaling_policies ORDER BY creation_time")
        return [(TargetTrackingPolicy(**json.loads(r["policy"])), r) for r in rows]

    def delete_policy(self, endpoint: str, variant: str, name: str) -> bool:
        with self.store._tx() as db:
            cursor = db.execute("DELETE FROM scaling_policies WHERE resource_id = ? AND name = ?",
                                (resource_id(endpoint, variant), name))
            return cursor.rowcount > 0

    # ---- activities -------------------------------------------------------------------------------
    def start_activity(self, endpoint: str, variant: str, from_count: int, to_count: int, cause: str) -> str:
        activity_id = str(uuid.uuid4())
        with self.store._tx() as db:
            db.execute("INSERT INTO scaling_activities (activity_id, resource_id, endpoint, from_count, to_count,"
                       " cause, status, start_time) VALUES (?, ?, ?, ?, ?, ?, 'InProgress', ?)",
                       (activity_id, resource_id(endpoint, variant), endpoint, from_count, to_count, cause,
                        time.time()))
        return activity_id

    def end_activity(self, activity_id: str, status: str, message: str | None = None) -> None:
        with self.store._tx() as db:
            db.execute("UPDATE scaling_activities SET status = ?, status_message = ?, end_time = ? "
                       "WHERE activity_id = ?", (status, message, time.time(), activity_id))

    def activities(self, endpoint: str | None = None, variant: str | None = None, limit: int = 50) -> list[dict]:
        """Newest first, in DescribeScalingActivities' shape (plus FromInstanceCount/ToInstanceCount)."""
        where, args = [], []
        if endpoint:
            where.append("endpoint = ?")
            args.append(endpoint)
        if variant:
            where.append("resource_id = ?")
            args.append(resource_id(endpoint, variant))
        rows = self._rows("SELECT * FROM scaling_activities" + (f" WHERE {' AND '.join(where)}" if where else "")
                          + " ORDER BY seq DESC LIMIT ?", (*args, int(limit)))
        return [activity_shape(r) for r in rows]


def activity_shape(row: dict) -> dict:
    direction = "out" if row["to_count"] > row["from_count"] else "in"
    out = {"ActivityId": row["activity_id"], "ServiceNamespace": SERVICE_NAMESPACE,
           "ResourceId": row["resource_id"], "ScalableDimension": SCALABLE_DIMENSION,
           "Description": f"Setting desired instance count to {row['to_count']}.",
           "Cause": row["cause"], "StartTime": iso(row["start_time"]),
           "StatusCode": row["status"], "FromInstanceCount": row["from_count"],
           "ToInstanceCount": row["to_count"], "Direction": direction}
    if row.get("end_time"):
        out["EndTime"] = iso(row["end_time"])
    if row.get("status_message"):
        out["StatusMessage"] = row["status_message"]
    return out

