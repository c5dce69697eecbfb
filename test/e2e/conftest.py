"""Fixtures for tests on real lab hosts; see lab/pytest_plugin.py."""

from lab.pytest_plugin import *  # noqa: F401,F403
