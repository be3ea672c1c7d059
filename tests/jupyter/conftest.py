"""pytest-jupyter's server fixtures (jp_fetch, jp_serverapp, ...) for the console's REST tests only.

Imported here rather than as a suite-wide plugin, so that its autouse fixtures and async-test hooks
apply to this folder alone. The server loads nbsage's extension as an installed nbsage would.
"""
import pytest

try:
    from pytest_jupyter.jupyter_server import *  # noqa: F401,F403
except ImportError:  # pytest-jupyter (a dev dependency) missing: these tests cannot run
    collect_ignore = ["test_rest.py"]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbsage.jupyter": True}}}
