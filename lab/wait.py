"""Polling for what a test waits on (mail to arrive, a daemon to listen)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 120, interval: float = 0.5,
               what: str = "condition") -> T:
    """Call ``check`` until it returns something true and return that; raise
    AssertionError naming ``what`` (and the last value) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met after {timeout} s (last: {value!r})")
        time.sleep(interval)
