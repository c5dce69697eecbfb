"""
The undo journal of ``qmail.sendmail`` (``__utils__``): what each step is
about to change on the host, saved before it changes it, so that
``qmail_sendmail.restore`` can give it back exactly.

The journal is one JSON file (lookup ``sendmail_journal``, 0600, written
through ``qmail_files.atomic_write``) of sections, each a mapping of keys
(a path, a service, an alternatives group) to what was there. The first
saved state of a key is the original and is never replaced; an undo step
forgets its key once it is back, and the file goes once it is empty.
Callers check the journal's path (``qmail_validate.path``) and pass the
writer, ``qmail_files.atomic_write`` (the loader gives ``_utils`` modules no
``__utils__``).
"""

import json
import logging
import os

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

# "groups" holds alternatives groups as they were before a file of theirs
# was moved away; the others are named for the step that saved them.
SECTIONS = ("binaries", "links", "boot", "alternatives", "groups", "mailer_conf", "stopped")


def read(journal):
    """What is saved in ``journal``, every section present (empty when
    nothing was saved)."""
    try:
        with open(journal, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        data = {}
    except ValueError as exc:
        raise CommandExecutionError(f"{journal} is not valid JSON: {exc}") from exc
    for section in SECTIONS:
        data.setdefault(section, {})
    return data


def _write(journal, data, write):
    write(journal, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), mode=0o600)


def save(journal, section, key, value, write):
    """Add ``value`` under ``section``/``key`` unless something is saved
    there already (the original stays). Returns what is saved."""
    data = read(journal)
    if key in data[section]:
        return data[section][key]
    data[section][key] = value
    data["version"] = 1
    _write(journal, data, write)
    return value


def forget(journal, section, key, write):
    """Drop ``section``/``key`` (it is back); remove the journal once it
    holds nothing."""
    data = read(journal)
    if data[section].pop(key, None) is None:
        return
    if any(data[s] for s in SECTIONS):
        _write(journal, data, write)
    else:
        os.unlink(journal)
