"""Polling for what a test waits on (mail to arrive, a daemon to listen)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 120, interval: float = 0.5,
               what: str = "condition",
               ignore: type[BaseException] | tuple[type[BaseException], ...] = ()) -> T:
    """Call ``check`` until it returns something true and return that; raise
    AssertionError naming ``what`` (and the last value) after ``timeout`` s.
    Exceptions of the ``ignore`` types count as a false value (e.g. a daemon
    that does not answer yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ignore as exc:
            value = exc
        if value and not isinstance(value, BaseException):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met after {timeout} s (last: {value!r})")
        time.sleep(interval)
