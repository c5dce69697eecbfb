"""The reading side of the lab's JSON-lines helpers (lab/saltclient.py,
lab/agent.py): each request waits on a slot ``[threading.Event, reply]``
kept under its ``id``; one thread reads the helper's answers."""

from __future__ import annotations

import json
import threading


def dispatch(stream, lock: threading.Lock, pending: dict[int, list]) -> None:
    """Hand each JSON line of ``stream`` to the slot of its ``id`` in
    ``pending`` (an answer nobody waits for any more is dropped); return at
    the end of the stream."""
    for line in stream:
        reply = json.loads(line)
        with lock:
            slot = pending.pop(reply.get("id"), None)
        if slot is not None:
            slot[1] = reply
            slot[0].set()
