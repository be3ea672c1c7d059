"""REST handlers under /nbsage/api/ (described in openapi.yaml beside this file).

Every handler is behind Jupyter's authentication (a token or a login cookie; 403 without) and its
authorizer (resource "nbsage"); writes also need the XSRF token (or the Authorization header).
Errors are JSON `{"message": "..."}` of one line with 400 (a bad request), 404 (no such job,
endpoint or model) or 409 (the wrong state for the action) — never a 500 with a traceback. The
work runs in a thread so that a slow store or a stopping server never holds up the web server.
"""
from __future__ import annotations

import asyncio
import json

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web, websocket

from nbsage.jupyter import console

AUTH_RESOURCE = "nbsage"


def _session():
    from nbsage.session import Session
    return Session.default()


def _one_line(error) -> str:
    from nbsage.arguments import one_line
    return one_line(error)


class _Base(APIHandler):
    """JSON in and out; nbsage's errors as 400/404/409 with one line."""

    auth_resource = AUTH_RESOURCE

    @property
    def stats(self) -> console.InvocationStats:
        return self.settings["nbsage_invocation_stats"]

    async def run(self, fn, *args, **kwargs):
        from nbsage.errors import NBSageError, ValidationError
        try:
            return await asyncio.to_thread(fn, _session(), *args, **kwargs)
        except console.NotFound as e:
            raise web.HTTPError(404, reason="Not Found", log_message=_one_line(e)) from None
        except ValidationError as e:
            raise web.HTTPError(400, reason="Bad Request", log_message=_one_line(e)) from None
        except (console.Conflict, NBSageError) as e:
            raise web.HTTPError(409, reason="Conflict", log_message=_one_line(e)) from None

    def body_json(self) -> dict:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError as e:
            raise web.HTTPError(400, log_message=f"the request body is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, log_message="the request body must be a JSON object")
        return data

    def int_argument(self, name: str, default: int = 0) -> int:
        value = self.get_argument(name, None)
        if value in (None, ""):
            return default
        try:
            number = int(value)
        except ValueError:
            raise web.HTTPError(400, log_message=f"{name} must be a whole number, got {value!r}") from None
        if number < 0:
            raise web.HTTPError(400, log_message=f"{name} must be 0 or more, got {number}")
        return number

    def send(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def write_error(self, status_code: int, **kwargs) -> None:
        """One line, never a traceback (APIHandler would add one for a 500)."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code >= 500:
            message = f"nbsage could not answer this request: {type(exc).__name__ if exc else 'error'}"
            if exc is not None:
                message += f": {_one_line(exc)}"
        else:
            message = self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "reason": self._reason}))


class JobsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self):
        rows = await self.run(console.list_jobs, status=self.get_argument("status", None),
                              kind=self.get_argument("kind", None), text=self.get_argument("text", None),
                              limit=self.int_argument("limit", console.LIST_LIMIT) or console.LIST_LIMIT)
        self.send({"Jobs": rows})


class JobKindsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self):
        self.send({"JobKinds": await self.run(console.job_kinds)})


class JobHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name):
        self.send(await self.run(console.describe_job, name))


class JobMetricsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name):
        self.send({"Metrics": await self.run(console.metrics, name, after=self.int_argument("after"))})


class JobLogsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name):
        limit = self.int_argument("limit") or None
        self.send(await self.run(console.logs, name, since=self.int_argument("since"), limit=limit,
                                 tail=self.int_argument("tail") or None))


class JobStopHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self, name):
        self.send(await self.run(console.stop_job, name))


class JobDeployHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self, name):
        body = self.body_json()
        count = body.get("InitialInstanceCount", 1)
        self.send(await self.run(console.deploy, name, endpoint_name=body.get("EndpointName") or None,
                                 instance_count=count), status=201)


class JobArtifactsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name):
        if self.get_argument("download", None):
            data, filename = await self.run(console.artifact_bytes, name)
            self.set_header("Content-Disposition", f'attachment; filename="{name}-{filename}"')
            self.finish(data, set_content_type="application/gzip")
            return
        self.send(await self.run(console.artifact_listing, name))


class ModelsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self):
        self.send({"Models": await self.run(console.list_models)})


class EndpointsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self):
        endpoints = await self.run(console.list_endpoints)
        for e in endpoints:
            e["nbsage:Invocations"] = self.stats.of(e["EndpointName"])
        self.send({"Endpoints": endpoints})


class EndpointHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name):
        desc = await self.run(console.describe_endpoint, name)
        desc["nbsage:Invocations"] = self.stats.of(name)
        self.send(desc)

    @web.authenticated
    @authorized
    async def delete(self, name):
        await self.run(console.delete_endpoint, name)
        self.set_status(204)
        self.finish()


class EndpointInvokeHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self, name):
        body = self.body_json()
        payload = body.get("Body")
        if not isinstance(payload, str):
            raise web.HTTPError(400, log_message="Body (the request payload, as text) is required")
        content_type = body.get("ContentType") or "text/csv"
        self.send(await self.run(console.invoke_endpoint, name, payload.encode("utf-8"), content_type,
                                 body.get("Accept") or None, stats=self.stats))


class MonitoringSchedulesHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self):
        self.send({"MonitoringScheduleSummaries": await self.run(console.list_monitoring_schedules)})


class MonitoringScheduleHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name):
        self.send(await self.run(console.describe_monitoring_schedule, name))


class EndpointShadowHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name):
        self.send(await self.run(console.shadow_report, name))


class EndpointShadowPromoteHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self, name):
        self.send(await self.run(console.promote_shadow, name))


class PlacesHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self):
        self.send({"Places": await self.run(console.list_places)})


class OpenAPIHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self):
        from pathlib import Path
        self.finish((Path(__file__).parent / "openapi.yaml").read_text(), set_content_type="application/yaml")


class EventsHandler(JupyterHandler, websocket.WebSocketHandler):
    """`/nbsage/api/events`: a websocket the console's views listen on; nbsage.jupyter.events pushes
    job, log, metric and endpoint changes to it (so no view polls)."""

    auth_resource = AUTH_RESOURCE

    async def pre_get(self):
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE))
        if not allowed:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args, **kwargs):
        await self.pre_get()
        result = super().get(*args, **kwargs)
        if result is not None:
            await result

    def open(self, *args, **kwargs):
        self.settings["nbsage_events"].subscribe(self)

    def on_message(self, message):
        """A client names the jobs whose logs and metrics it follows: {"follow": [names]}."""
        try:
            data = json.loads(message)
        except ValueError:
            return
        if isinstance(data, dict) and isinstance(data.get("follow"), list):
            self.settings["nbsage_events"].follow(self, [str(n) for n in data["follow"]])

    def on_close(self):
        self.settings["nbsage_events"].unsubscribe(self)


NAME = r"(?P<name>[^/]+)"


def routes(base_url: str) -> list[tuple]:
    from jupyter_server.utils import url_path_join
    api = url_path_join(base_url, "nbsage", "api")
    table = [
        ("jobs", JobsHandler), ("job-kinds", JobKindsHandler), (f"jobs/{NAME}", JobHandler),
        (f"jobs/{NAME}/metrics", JobMetricsHandler), (f"jobs/{NAME}/logs", JobLogsHandler),
        (f"jobs/{NAME}/stop", JobStopHandler), (f"jobs/{NAME}/deploy", JobDeployHandler),
        (f"jobs/{NAME}/artifacts", JobArtifactsHandler), ("models", ModelsHandler),
        ("endpoints", EndpointsHandler), (f"endpoints/{NAME}", EndpointHandler),
        (f"endpoints/{NAME}/invoke", EndpointInvokeHandler), ("places", PlacesHandler),
        ("monitoring-schedules", MonitoringSchedulesHandler), (f"monitoring-schedules/{NAME}", MonitoringScheduleHandler),
        (f"endpoints/{NAME}/shadow", EndpointShadowHandler),
        (f"endpoints/{NAME}/shadow/promote", EndpointShadowPromoteHandler),
        ("openapi.yaml", OpenAPIHandler), ("events", EventsHandler),
    ]
    return [(url_path_join(api, path), handler) for path, handler in table]
