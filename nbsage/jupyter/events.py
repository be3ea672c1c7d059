"""Live updates for the console: one watcher per Jupyter server pushes changes to the open pages.

Jobs are written by supervisors in other processes, so something has to look at the store; it is
done once here, in the server, for every page at once, instead of each view polling the REST API.
While at least one page listens on /nbsage/api/events, the watcher reads the store every
`interval` seconds (cheap: the jobs' status columns, the endpoints, and the new log and metric rows
of running jobs) and sends short notices over the websocket:

    {"type": "jobs", "changed": [names]}          a job appeared or its status/progress moved
    {"type": "endpoints", "changed": [names]}     an endpoint appeared, moved or went away
    {"type": "logs", "job": name}                 new log lines (the page reads them with ?since=)
    {"type": "metrics", "job": name}              new metric values (the page reads them with ?after=)

A page reads the data itself after a notice, from its own cursor, so a notice lost to a reconnect
costs nothing: the page re-reads on reconnecting.
"""
from __future__ import annotations

import asyncio
import json
import logging

log = logging.getLogger(__name__)

INTERVAL = 0.5


class EventHub:
    def __init__(self, interval: float = INTERVAL):
        self.interval = interval
        self.sockets: set = set()
        self._jobs: dict[str, tuple] = {}
        self._endpoints: dict[str, tuple] = {}
        self._log_cursor: dict[str, int] = {}
        self._metric_cursor: dict[str, int] = {}
        self._task: asyncio.Task | None = None
        self._primed = False

    # ---- sockets ----------------------------------------------------------------------------------
    def subscribe(self, socket) -> None:
        self.sockets.add(socket)
        if self._task is None or self._task.done():
            self._task = asyncio.get_event_loop().create_task(self._run())

    def follow(self, socket, names: list[str]) -> None:
        """Kept for clients that name the jobs they show; every running job's logs are announced anyway."""

    def unsubscribe(self, socket) -> None:
        self.sockets.discard(socket)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _send(self, notices: list[dict]) -> None:
        for socket in list(self.sockets):
            for notice in notices:
                try:
                    socket.write_message(json.dumps(notice))
                except Exception:  # a socket closed without a clean close handshake
                    self.sockets.discard(socket)
                    break

    # ---- the watcher ------------------------------------------------------------------------------
    async def _run(self) -> None:
        while self.sockets:
            try:
                notices = await asyncio.to_thread(self.scan)
            except Exception as e:  # a locked or unreadable store: say so in the server log, keep going
                log.warning("nbsage console: the store could not be read: %s", e)
                notices = []
            if notices:
                self._send(notices)
            await asyncio.sleep(self.interval)

    def scan(self, session=None) -> list[dict]:
        """What changed since the last scan, as notices (none on the first scan)."""
        from nbsage.jupyter.console import LIST_LIMIT
        from nbsage.session import Session
        session = session or Session.default()
        session.watch_jobs()  # a job whose supervisor died is marked Failed even if nobody describes it
        store = session.store
        notices: list[dict] = []

        jobs = {r["name"]: r for r in store.list_jobs(limit=LIST_LIMIT)}
        seen = {n: (r["status"], r["secondary_status"], r["last_modified"], r["progress_step"])
                for n, r in jobs.items()}
        changed = sorted(n for n in seen.keys() | self._jobs.keys() if seen.get(n) != self._jobs.get(n))
        self._jobs = seen
        if changed and self._primed:
            notices.append({"type": "jobs", "changed": changed})

        for name, record in jobs.items():
            running = record["status"] in ("InProgress", "Stopping")
            if not running and (name not in changed or not self._primed):
                continue  # ended before, or ended now (its last lines are read once more, below)
            logs = store.get_logs(name, after_seq=self._log_cursor.get(name, 0))
            if logs:
                self._log_cursor[name] = logs[-1][0]
                if self._primed:
                    notices.append({"type": "logs", "job": name})
            self._log_cursor.setdefault(name, 0)
            metrics = store.get_metrics(name, after_id=self._metric_cursor.get(name, 0))
            if metrics:
                self._metric_cursor[name] = metrics[-1]["id"]
                if self._primed:
                    notices.append({"type": "metrics", "job": name})
        for gone in set(self._log_cursor) - jobs.keys():
            self._log_cursor.pop(gone, None)
            self._metric_cursor.pop(gone, None)

        endpoints = {e["EndpointName"]: (e["EndpointStatus"], e.get("LastModifiedTime"))
                     for e in session.list_endpoints()}
        moved = sorted(n for n in endpoints.keys() | self._endpoints.keys()
                       if endpoints.get(n) != self._endpoints.get(n))
        self._endpoints = endpoints
        if moved and self._primed:
            notices.append({"type": "endpoints", "changed": moved})
        self._primed = True
        return notices
