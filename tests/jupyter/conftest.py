"""pytest-jupyter's server fixtures (jp_fetch, jp_serverapp, ...) for the console's REST tests only.

Imported here rather than as a suite-wide plugin, so that its autouse fixtures and async-test hooks
apply to this folder alone. The server loads nbsage's extension as an installed nbsage would.
"""
import asyncio

import pytest

try:
    from pytest_jupyter.jupyter_server import *  # noqa: F401,F403
except ImportError:  # pytest-jupyter (a dev dependency) missing: these tests cannot run
    collect_ignore = ["test_rest.py"]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbsage.jupyter": True}}}


@pytest.fixture
def jp_asyncio_loop():
    """A new event loop for each test, rather than the thread's current one, which a test run earlier by
    the same worker may have left marked as running."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
