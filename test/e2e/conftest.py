"""Fixtures for tests on real lab hosts; see lab/pytest_plugin.py."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from lab.pytest_plugin import *  # noqa: E402,F401,F403
