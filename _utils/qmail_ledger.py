"""
The ledger (``__utils__``): what the formula created on the host, so that
every ``clean`` removes only that (issue 19). One JSON file (lookup
``ledger``, default ``/var/lib/qmail-formula/ledger.json``, 0600), written
through ``qmail_files.atomic_write`` like the undo journal, of sections:

- ``dirs``, ``files``: paths (the TLS folder, the build workdir, the relay
  rules);
- ``users``, ``groups``: account names;
- ``packages``: package names (the dummy MTA package);
- ``displaced``: packages that installing one of the formula's removed
  (``ucspi-tcp``, which ``ucspi-tcp-ipv6`` replaces): a clean installs them
  again once the formula's is purged.

An entry is recorded when the formula creates the thing, or on the first
apply of this version when the host proves it is the formula's (an account
of qmail's shape, a folder holding only the formula's files); a clean
forgets it once removed, and the file goes once it is empty. Callers pass
the writer (the loader gives ``_utils`` modules no ``__utils__``).
"""

import json
import logging
import os

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

KINDS = ("dirs", "files", "users", "groups", "packages", "displaced")


def read(ledger):
    """The ledger's sections (each a sorted list; empty when none)."""
    try:
        with open(ledger, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        data = {}
    except ValueError as exc:
        raise CommandExecutionError(f"{ledger} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CommandExecutionError(f"{ledger} is not a ledger (a JSON object)")
    return {kind: sorted(data.get(kind) or []) for kind in KINDS}


def _check(kind):
    if kind not in KINDS:
        raise CommandExecutionError(f"kind: {kind!r} is not one of " + ", ".join(KINDS))


def lists(ledger, kind, name):
    _check(kind)
    return name in read(ledger)[kind]


def _write(ledger, data, write):
    if not any(data[k] for k in KINDS):
        if os.path.lexists(ledger):
            os.unlink(ledger)
        return
    os.makedirs(os.path.dirname(ledger), mode=0o755, exist_ok=True)
    body = dict(data, version=1)
    write(ledger, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode(), mode=0o600)


def record(ledger, kind, name, write):
    """Add ``name`` under ``kind``; True when it was not listed yet."""
    _check(kind)
    data = read(ledger)
    if name in data[kind]:
        return False
    data[kind] = sorted(data[kind] + [name])
    _write(ledger, data, write)
    return True


def forget(ledger, kind, name, write):
    """Drop ``name`` from ``kind`` (it is gone); True when it was listed."""
    _check(kind)
    data = read(ledger)
    if name not in data[kind]:
        return False
    data[kind].remove(name)
    _write(ledger, data, write)
    return True
