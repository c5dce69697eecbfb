"""Suite-wide pytest settings (loaded before the session starts)."""

import durations
import pytest
from durations import pytest_addoption, pytest_collection_modifyitems  # noqa: F401 (hooks)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Keep salt-factories' log server on loopback: its default is 0.0.0.0,
    and only the salt-master on this machine writes to it."""
    server = config.pluginmanager.get_plugin("saltfactories-log-server")
    if server is not None:
        server.log_host = "127.0.0.1"
    durations.configure(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist's controller, before a worker starts (see durations)."""
    durations.pytest_configure_node(node)


def pytest_unconfigure(config):
    durations.unconfigure(config)
