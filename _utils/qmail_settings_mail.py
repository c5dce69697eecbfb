"""
Who gets mail, checked for ``qmail_settings.merge`` (``__utils__``): the
``~alias/.qmail`` files (``qmail:aliases``), the default delivery
(``qmail:delivery``) and ``qmail:control:percenthack``, which must not
open a relay through the domains the host accepts.

The loader gives ``_utils`` modules no ``__utils__``: ``qmail_settings``
passes ``v``, the getter of the shared validators
(``_utils/qmail_validate.py``), and whatever else a check needs.
"""

import os
import shlex

from salt.exceptions import SaltInvocationError

_ALIAS_NAME_RE = r"[a-z0-9][a-z0-9._-]{0,63}"
_ADDRESS_RE = r"[A-Za-z0-9!#$%'*+/=?^_`{|}~.-]+(@[A-Za-z0-9.-]+)?"


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def _accepted_hosts(v, managed):
    """rcpthosts and morercpthosts entries (lower case) -> the file naming
    them: the domains qmail-smtpd takes mail for from anyone."""
    accepted = {}
    for name in ("morercpthosts", "rcpthosts"):  # rcpthosts named first when in both
        for entry in managed.get(name) or ():
            if not entry.startswith("#"):
                accepted[entry.lower()] = name
    return accepted


def check_percenthack(v, settings):
    """
    percenthack makes qmail-send turn ``x%victim.example@domain`` into
    ``x@victim.example`` for each ``domain`` listed. A domain qmail-smtpd
    accepts from anyone (rcpthosts, morercpthosts, one of their wildcards)
    or that is this host's own (me, locals) would take that address from
    anyone and send it on: an open relay. Such entries are refused.
    """
    given = settings["control"].get("percenthack")
    if not given:
        return
    managed = settings["control_managed"]
    accepted = _accepted_hosts(v, managed)
    local = {h.lower() for h in managed.get("locals") or ()} | {settings["me"].lower()}
    relay = "x%victim.example@{} would be accepted from anyone and relayed (open relay)"
    for i, entry in enumerate(given if isinstance(given, list) else [given]):
        domain = entry.strip(" \t")
        if domain.startswith("#"):
            continue
        where = f"qmail:control:percenthack[{i}]"
        hit = v("covered_by")(domain, accepted)
        if hit == domain.lower():
            _fail(where, f"{domain!r} is in {accepted[hit]}: " + relay.format(domain))
        if hit:
            _fail(where, f"{domain!r} is covered by {accepted[hit]}'s {hit!r}: "
                         + relay.format(domain))
        if domain.lower() in local:
            _fail(where, f"{domain!r} is this host's own (me or locals): "
                         + relay.format(domain))


def _alias_line(v, line, where, alias_home):
    """One delivery of a ~alias/.qmail file, kept inside the alias home."""
    v("string")(line, where, max_length=1000)
    line = line.strip()
    if line.startswith(("#", "|")):
        return line, None
    if line.startswith("&"):
        v("matches")(line[1:], where, _ADDRESS_RE, "an address after &")
        return line, None
    if v("is_file_delivery")(line):
        v("file_delivery")(line, where, f"the alias home {alias_home}")
        full = v("path")(os.path.join(alias_home, line), where)
        return line, (full if line.endswith("/") else None)
    v("matches")(line, where, _ADDRESS_RE,
                  "a .qmail delivery (./Maildir/, ./Mailbox, &address, |command)")
    return line, None


def check_aliases(v, aliases, home):
    alias_home = os.path.join(home, "alias")
    files, maildirs = {}, set()
    for name, lines in aliases.items():
        where = f"qmail:aliases:{name}"
        if not isinstance(name, str):
            _fail(where, "not an alias name")
        v("matches")(name, where, _ALIAS_NAME_RE,
                      "an alias name (lower case letters, digits, . _ -)")
        if lines is None:
            files[name] = None
            continue
        v("list_of")(lines, where)
        if not lines:
            _fail(where, "empty: give at least one delivery line, or null to remove the file")
        files[name] = []
        for i, line in enumerate(lines):
            line, maildir = _alias_line(v, line, f"{where}[{i}]", alias_home)
            files[name].append(line)
            if maildir:
                maildirs.add(maildir)
    return files, sorted(maildirs)


def check_delivery(v, delivery):
    key = "qmail:delivery"
    line = v("string")(delivery, key, max_length=1000).strip()
    # The first character decides, as in qmail-local: "/etc/cron.d/x@" is a
    # file, "|cmd a@b" a command.
    if v("is_file_delivery")(line):
        v("file_delivery")(line, key)
    elif line.startswith("|"):
        pass
    elif line.startswith("&") or "@" in line:
        v("matches")(line.removeprefix("&"), key, _ADDRESS_RE, "an address to forward to")
    else:
        _fail(key, f"{line!r} is not a .qmail delivery (./Maildir/, ./Mailbox, |command, "
                   "&address)")
    return shlex.quote(line)
