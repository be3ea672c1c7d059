"""The nbsage console's server side: a Jupyter server extension (a face over nbsage's Python API).

Installing nbsage enables it (jupyter-config/jupyter_server_config.d/nbsage.json, installed into
etc/jupyter); the front end is the prebuilt JupyterLab extension in nbsage/labextension, built from
labextension/. It adds REST under /nbsage/api/ (openapi.yaml beside this file) and the websocket
/nbsage/api/events that pushes job and endpoint changes to open pages.

Nothing heavy is imported here: `import nbsage.jupyter` costs nothing until a server loads it.
"""
from __future__ import annotations

from pathlib import Path

LABEXTENSION_NAME = "nbsage-console"


def _jupyter_server_extension_points():
    return [{"module": "nbsage.jupyter"}]


def _jupyter_labextension_paths():
    return [{"src": str(Path(__file__).parent.parent / "labextension"), "dest": LABEXTENSION_NAME}]


def _load_jupyter_server_extension(serverapp):
    from nbsage.jupyter.console import InvocationStats
    from nbsage.jupyter.events import EventHub
    from nbsage.jupyter.handlers import routes
    web_app = serverapp.web_app
    hub = EventHub()
    web_app.settings["nbsage_events"] = hub
    web_app.settings["nbsage_invocation_stats"] = InvocationStats()
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
    serverapp.log.info("nbsage console: REST API at %snbsage/api/", web_app.settings["base_url"])


# the name Jupyter Server 1 looked for
load_jupyter_server_extension = _load_jupyter_server_extension
