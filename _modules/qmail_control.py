"""
Read, check and write qmail's control files (qmail-control(5)).

Every one of the 28 control files is known here with its syntax, its default
when absent, the program that reads it and what that program needs to see a
change. Writes are atomic (temporary file, fsync, rename) so qmail never reads
half a file.

The qmail home defaults to pillar/config ``qmail:lookup:home`` or /var/qmail;
every function takes ``home`` to point elsewhere.
"""

import difflib
import functools
import logging
import os
import re
import stat

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_control"
__func_alias__ = {"list_": "list"}


# A local part as qmail takes it in addresses (no spaces, @, : or control chars).
_LOCALPART_RE = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
_PREPEND_RE = r"[A-Za-z0-9._+-]{1,64}"
# A DNS name in ASCII (the shared validator's rule, for the fast path).
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_PLAIN_HOST_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

# reload actions: what qmail must be told after a change
HUP = "hup"  # qmail-send re-reads locals and virtualdomains on SIGHUP
RESTART = "restart"  # other qmail-send files are read only at start
NEWMRH = "newmrh"  # morercpthosts is read through morercpthosts.cdb
# This state run's record of the control files that changed (or would, under
# test=True) in a way qmail must be told of: {path: reload action}.
_TOLD = "qmail_control.changed"


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


# --------------------------------------------------------------------------
# Syntax of single values (the shared validators); each raises
# SaltInvocationError naming ``key``.
# --------------------------------------------------------------------------
def _check_host(value, key):
    _v("host")(value, key)


def _check_me(value, key):
    _v("fqdn")(value, key)


def _check_wildcard(value, key):
    """rcpthosts/morercpthosts: a host, or ``.domain`` for every subdomain
    below a public suffix."""
    _v("wildcard")(value, key)


def _check_localpart(value, key):
    _v("matches")(value, key, _LOCALPART_RE, "a local part (the part before @)")


def _check_badmailfrom(value, key):
    local, sep, host = value.rpartition("@")
    if not sep or not _v("is_host")(host) or (local and not re.fullmatch(_LOCALPART_RE, local)):
        _v("fail")(key, f"{value!r} is not an address or @host")


def _check_ipv4(value, key):
    _v("ipv4")(value, key)


def _check_smtproute(value, key):
    """``domain:relay[:port]``; empty domain = all, ``.dom`` = subdomains,
    empty relay = MX, relay may be ``[1.2.3.4]``."""
    fail = _v("fail")
    parts = value.split(":")
    if len(parts) not in (2, 3):
        fail(key, f"{value!r} is not domain:relay[:port]")
    domain, relay = parts[0], parts[1]
    if domain and not _v("is_host")(domain.removeprefix(".")):
        fail(key, f"{value!r}: {domain!r} is not a domain or .domain")
    if relay.startswith("[") and relay.endswith("]"):
        _v("relay_address")(relay[1:-1], key, value)
    elif relay and not _v("is_host")(relay):
        fail(key, f"{value!r}: {relay!r} is not a relay host or [address]")
    elif relay.replace(".", "").isdigit():
        # A bare dotted quad is an address too: the same rules.
        _v("relay_address")(relay, key, value)
    if len(parts) == 3:
        _v("integer")(parts[2], f"{key} (port)", 1, 65535)


def _check_virtualdomain(value, key):
    """``domain:prepend``, ``user@domain:prepend`` or ``.dom:prepend``."""
    fail = _v("fail")
    target, sep, prepend = value.rpartition(":")
    if not sep or not target:
        fail(key, f"{value!r} is not domain:prepend")
    local, at, domain = target.rpartition("@")
    if at and not re.fullmatch(_LOCALPART_RE, local):
        fail(key, f"{value!r}: {local!r} is not a user name")
    if not _v("is_host")(domain.removeprefix(".")):
        fail(key, f"{value!r}: {domain!r} is not a domain or .domain")
    if domain.startswith("."):
        # qmail-send delivers every address under a wildcard locally (to the
        # prepend's user): one over a public suffix takes strangers' mail.
        _v("wildcard")(domain, key, "deliver every domain under it to "
                                    f"{prepend!r} here")
    if not re.fullmatch(_PREPEND_RE, prepend):
        fail(key, f"{value!r}: {prepend!r} is not a user prefix")


def _check_text(value, key):
    # qmail-smtpd sends "220 <text>\r\n": RFC 5321 allows 512 octets a line.
    _v("greeting")(value, key)


# --------------------------------------------------------------------------
# The catalogue. kind: "host" (one value), "text", "int", or "list".
# --------------------------------------------------------------------------
def _single(check, default, reader, reload=None):
    return {"kind": "single", "check": check, "default": default,
            "reader": reader, "reload": reload}


# qmail's control_readint keeps every number in a C int.
MAX_INT = 2**31 - 1


def _number(default, reader, minimum, maximum=MAX_INT, reload=None):
    return {"kind": "int", "default": default, "reader": reader,
            "min": minimum, "max": maximum, "reload": reload}


def _list(check, default, reader, comments, reload=None):
    return {"kind": "list", "check": check, "default": default,
            "reader": reader, "comments": comments, "reload": reload}


# "me" as a default means: the value of control/me.
ME = "@me"
CATALOGUE = {
    "badmailfrom": _list(_check_badmailfrom, None, "qmail-smtpd", True),
    "bouncefrom": _single(_check_localpart, "MAILER-DAEMON", "qmail-send", RESTART),
    "bouncehost": _single(_check_host, ME, "qmail-send", RESTART),
    # conf-spawn caps both; 255 is conf-spawn's own maximum.
    "concurrencylocal": _number(10, "qmail-send", 1, 255, RESTART),
    "concurrencyremote": _number(20, "qmail-send", 1, 255, RESTART),
    "databytes": _number(0, "qmail-smtpd", 0),
    "defaultdomain": _single(_check_host, ME, "qmail-inject"),
    "defaulthost": _single(_check_host, ME, "qmail-inject"),
    "doublebouncehost": _single(_check_host, ME, "qmail-send", RESTART),
    "doublebounceto": _single(_check_localpart, "postmaster", "qmail-send", RESTART),
    "envnoathost": _single(_check_host, ME, "qmail-send", RESTART),
    "helohost": _single(_check_host, ME, "qmail-remote"),
    "idhost": _single(_check_host, ME, "qmail-inject"),
    "localiphost": _single(_check_host, ME, "qmail-smtpd"),
    "locals": _list(_check_host, [ME], "qmail-send", True, HUP),
    "me": _single(_check_me, None, "qmail-send", RESTART),
    "morercpthosts": _list(_check_wildcard, None, "qmail-smtpd", False, NEWMRH),
    "percenthack": _list(_check_host, None, "qmail-send", True, RESTART),
    "plusdomain": _single(_check_host, ME, "qmail-inject"),
    "qmqpservers": _list(_check_ipv4, None, "qmail-qmqpc", True),
    "queuelifetime": _number(604800, "qmail-send", 0, reload=RESTART),
    # Absent rcpthosts makes qmail-smtpd accept every recipient: open relay.
    "rcpthosts": _list(_check_wildcard, None, "qmail-smtpd", True),
    "smtpgreeting": _single(_check_text, ME, "qmail-smtpd"),
    "smtproutes": _list(_check_smtproute, None, "qmail-remote", True),
    "timeoutconnect": _number(60, "qmail-remote", 1),
    "timeoutremote": _number(1200, "qmail-remote", 1),
    "timeoutsmtpd": _number(1200, "qmail-smtpd", 1),
    "virtualdomains": _list(_check_virtualdomain, None, "qmail-send", True, HUP),
}


def _home(home=None):
    if home:
        return _v("own_dir")(str(home), "home")
    # Not given (a call from the command line): the home the formula's
    # states use, from the one owner of the settings and their defaults.
    return _v("own_dir")(__salt__["qmail_settings.get"]("lookup:home"), "qmail:lookup:home")


def _control_dir(home=None):
    return os.path.join(_home(home), "control")


def _spec(name, key="name"):
    if not isinstance(name, str) or name not in CATALOGUE:
        raise SaltInvocationError(
            f"{key}: {name!r} is not a qmail control file; known files: "
            + ", ".join(sorted(CATALOGUE))
        )
    return CATALOGUE[name]


def _path(name, home=None):
    _spec(name)
    return os.path.join(_control_dir(home), name)


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------
def files():
    """
    Return the names of every control file qmail knows (qmail-control(5)).

    CLI Example::

        salt '*' qmail_control.files
    """
    return sorted(CATALOGUE)


def normalize(name, value, key=None):
    """
    Check ``value`` for control file ``name`` and return the file's content:
    one entry per line, a trailing newline, duplicates dropped (list files),
    comments kept where qmail allows them. Raises SaltInvocationError naming
    ``key`` (default: the file's name) on bad input.

    CLI Example::

        salt '*' qmail_control.normalize rcpthosts '[example.com, .example.com]'
    """
    key = key or name
    spec = _spec(name, key)
    if spec["kind"] == "list":
        lines = _normalize_list(spec, value, key)
        return "".join(f"{line}\n" for line in lines)
    return _normalize_single(spec, value, key) + "\n"


def _normalize_single(spec, value, key):
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if spec["kind"] == "int":
        return str(_v("integer")(value, key, spec["min"], spec["max"]))
    _v("string")(value, key)
    text = value.strip(" \t")
    spec["check"](text, key)
    return text


def _normalize_list(spec, value, key):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SaltInvocationError(
            f"{key}: expected a list of entries, got {_v('type_name')(value)} {value!r}"
        )
    seen = set()
    lines = []
    check = spec["check"]
    string = _v("string")
    # Plain host names (the bulk of a large rcpthosts) need no stripping,
    # are no comment and no wildcard: one match says they are good.
    plain = _PLAIN_HOST_RE.fullmatch if check in (_check_host, _check_wildcard) else None
    for index, entry in enumerate(value):
        if plain is not None and type(entry) is str and len(entry) <= 253 and plain(entry):
            if entry not in seen:
                seen.add(entry)
                lines.append(entry)
            continue
        where = f"{key}[{index}]"
        string(entry, where, empty_ok=True)
        entry = entry.strip(" \t")
        if entry.startswith("#"):
            if not spec["comments"]:
                raise SaltInvocationError(f"{where}: qmail allows no comments here")
            lines.append(entry)
            continue
        if not entry:
            raise SaltInvocationError(f"{where}: empty entry")
        check(entry, where)
        if entry not in seen:
            seen.add(entry)
            lines.append(entry)
    return lines


def reload_action(name):
    """
    Say what qmail needs after control file ``name`` changed: ``hup``
    (qmail-send re-reads it on SIGHUP), ``restart`` (qmail-send reads it only
    at start), ``newmrh`` (rebuild morercpthosts.cdb) or None (read per
    message by qmail-smtpd, qmail-remote or qmail-inject).

    CLI Example::

        salt '*' qmail_control.reload_action locals
    """
    return _spec(name)["reload"]


def _read_bytes(path):
    """The bytes of a control file as qmail would read them, or None when
    absent. A symlink is not followed (its target may lie outside
    control/): it reads as the marker ``LINK``. A folder fails."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return LINK
    if not stat.S_ISREG(st.st_mode):
        raise CommandExecutionError(
            f"{path} is a folder or special file, not a control file; move it away")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


# What a symlink in a control file's place reads as: never equal to content.
LINK = object()


def _text(data):
    """Bytes shown to a person: ASCII, anything else escaped (\\r, \\xNN)."""
    return data.decode("ascii", "backslashreplace").replace("\r", "\\r")


def read(name, home=None):
    """
    Return the content of control file ``name`` (bytes that are not ASCII
    escaped as ``\\xNN``, a carriage return as ``\\r``), or None when it
    is absent. A symlink is not followed.

    CLI Example::

        salt '*' qmail_control.read me
    """
    data = _read_bytes(_path(name, home))
    if data is None:
        return None
    if data is LINK:
        return f"(symlink to {os.readlink(_path(name, home))}; content not shown)"
    return _text(data)


def list_(home=None):
    """
    List the control files present under ``<home>/control``.

    CLI Example::

        salt '*' qmail_control.list
    """
    try:
        names = os.listdir(_control_dir(home))
    except FileNotFoundError:
        return []
    return sorted(name for name in names if name in CATALOGUE)


def _mode_owner(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return {"mode": f"{st.st_mode & 0o7777:04o}", "uid": st.st_uid, "gid": st.st_gid}


def check_changes(name, value, home=None, key=None):
    """
    Predict what writing ``value`` to control file ``name`` would change,
    without touching anything. Returns a dict (empty when nothing changes)
    with ``diff`` and/or ``mode``/``owner``, and ``reload`` when qmail must
    be told. Raises SaltInvocationError on bad input.

    CLI Example::

        salt '*' qmail_control.check_changes rcpthosts '[example.com]'
    """
    text = normalize(name, value, key)
    return _note(name, home, _changes(name, text, home))


def _changes(name, text, home):
    """Compare as bytes: CRLF, a stray \\r or undecodable bytes are a change."""
    path = _path(name, home)
    old = _read_bytes(path)
    changes = {}
    if old is None or old is LINK or old != text.encode("ascii"):
        changes["diff"] = _diff(name, old, text, path)
    else:
        state = _mode_owner(path)
        if state["mode"] != "0644":
            changes["mode"] = {"old": state["mode"], "new": "0644"}
        if state["uid"] != 0:
            changes["owner"] = {"old": state["uid"], "new": 0}
    if "diff" in changes and reload_action(name):
        changes["reload"] = reload_action(name)
    return changes


# Past this many lines a diff is summarised: 100,000 rcpthosts make no report.
MAX_DIFF_LINES = 500


def _diff(name, old, new, path):
    """A unified diff of the change; a new or removed file diffs against
    nothing; a symlink's target content is never shown."""
    if old is LINK:
        link = os.readlink(path)
        return (f"replaces the symlink {name} -> {link} (its content is not shown)"
                if new is not None else f"Removed the symlink {name} -> {link}")
    if new is None:
        return "Removed"
    # qmail splits at \\n only: show each line with any \\r left in it.
    old_lines = [] if old is None else [
        _text(line) + "\n" for line in old.split(b"\n")[:-1]] + (
        [_text(old.split(b"\n")[-1]) + "\n"] if old.split(b"\n")[-1] else [])
    lines = list(difflib.unified_diff(
        old_lines, [line + "\n" for line in new.split("\n")[:-1]],
        fromfile="/dev/null" if old is None else f"{name} (old)",
        tofile=f"{name} (new)", n=1,
    ))
    if len(lines) > MAX_DIFF_LINES:
        added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
        return f"{added} lines added, {removed} removed (diff too long to show)"
    return "".join(lines)


def write(name, value, home=None):
    """
    Check and write control file ``name`` atomically (mode 0644, owner
    root). Returns the changes made, as ``check_changes`` predicts them. A
    symlink in the file's place is replaced by the file (its target is left
    alone).

    CLI Example::

        salt '*' qmail_control.write concurrencyremote 40
        salt '*' qmail_control.write rcpthosts '[example.com, .example.com]'
    """
    _spec(name)
    text = normalize(name, value)
    changes = _changes(name, text, home)
    if changes:
        try:
            __utils__["qmail_files.atomic_write"](
                _path(name, home), text.encode("ascii"), mode=0o644, uid=0
            )
        except OSError as exc:
            # atomic_write only renames a complete file: the old one stays.
            raise CommandExecutionError(
                f"cannot write {_path(name, home)}: {exc.strerror or exc}; "
                "the file keeps its old content") from exc
        log.info("qmail_control: wrote %s", _path(name, home))
    return _note(name, home, changes)


def check_remove(name, home=None):
    """
    Predict what removing control file ``name`` would change.

    CLI Example::

        salt '*' qmail_control.check_remove smtproutes
    """
    path = _path(name, home)
    old = _read_bytes(path)
    if old is None:
        return {}
    changes = {"diff": _diff(name, old, None, path)}
    if old is not LINK:
        changes["old"] = _text(old)
    if reload_action(name):
        changes["reload"] = reload_action(name)
    return _note(name, home, changes)


def remove(name, home=None):
    """
    Remove control file ``name``; qmail then uses the file's default. A
    symlink is removed itself, never what it leads to.

    CLI Example::

        salt '*' qmail_control.remove smtproutes
    """
    changes = check_remove(name, home)
    if changes:
        try:
            os.unlink(_path(name, home))
        except FileNotFoundError:
            _forget(name, home)  # gone meanwhile: nothing to tell after all
            return {}
        except OSError as exc:
            raise CommandExecutionError(f"cannot remove {_path(name, home)}: {exc}") from exc
        log.info("qmail_control: removed %s", _path(name, home))
    return changes


def _ledger():
    """This state run's record (see _TOLD), made on first use."""
    run = __context__.value() if hasattr(__context__, "value") else __context__
    found, ledger = __utils__["qmail_runcache.lookup"](run, _TOLD)
    return ledger if found else __utils__["qmail_runcache.store"](run, _TOLD, {})


def _note(name, home, changes):
    """
    Keep a change that qmail must be told of for the rest of the run: the
    service's reaction states name it in their ``because``. Only the reason
    is kept here; which reaction a file calls for is written in the SLS.
    """
    if changes.get("reload"):
        _ledger()[_path(name, home)] = changes["reload"]
    return changes


def _forget(name, home):
    _ledger().pop(_path(name, home), None)


def changed(home=None):
    """
    The control files this state run changed (under ``test=True``: would
    change) in a way qmail must be told of, as ``{name: reload}``; empty
    outside a state run. The reaction states of ``qmail_service`` name them
    as the reason (``because``) of a restart, HUP or qmail-newmrh.

    CLI Example::

        salt '*' qmail_control.changed
    """
    folder = _control_dir(home)
    return {os.path.basename(path): action for path, action in sorted(_ledger().items())
            if os.path.dirname(path) == folder}


def _parse(spec, data):
    """What qmail reads from ``data``: lines split at \\n only."""
    lines = [_text(line).strip(" \t") for line in _v("split_lines")(data)]
    if spec["kind"] == "list":
        if spec["comments"]:
            return [line for line in lines if line and not line.startswith("#")]
        return [line for line in lines if line]
    first = lines[0] if lines else ""
    if spec["kind"] == "int":
        return int(first) if re.fullmatch(r"[0-9]+", first) else 0
    return first


def showctl(home=None):
    """
    Return the effective settings, as qmail-showctl would: for every control
    file its ``value`` and whether it comes from the file or the ``default``.
    An empty file is not an absent one (an empty ``locals`` means nothing is
    local). ``rcpthosts`` absent is reported with ``open_relay: True``.

    CLI Example::

        salt '*' qmail_control.showctl
    """
    present = {}
    for name in list_(home):
        data = _read_bytes(_path(name, home))
        if data is LINK:
            present[name] = f"(symlink to {os.readlink(_path(name, home))})"
        elif data is not None:
            present[name] = _parse(CATALOGUE[name], data)
    me = present.get("me") or None
    result = {}
    for name, spec in sorted(CATALOGUE.items()):
        if name in present:
            result[name] = {"value": present[name], "default": False}
            continue
        default = spec["default"]
        if default == ME:
            default = me
        elif default == [ME]:
            default = [me] if me else []
        result[name] = {"value": default, "default": True}
    result["rcpthosts"]["open_relay"] = "rcpthosts" not in present
    return result


# --------------------------------------------------------------------------
# Roles (the seed's §4 and §5)
# --------------------------------------------------------------------------
def derive(role, me, spool=None, overrides=None, key="qmail"):
    """
    Compute the control files for a host of ``role`` (``spool`` or
    ``client``) named ``me``, then apply ``overrides`` (file name -> value;
    None removes the file). Returns file name -> normalised value (a list of
    lines for list files, a string otherwise), or None for files to remove.
    Everything is checked first; errors name the pillar key under ``key``.

    spool:  me, defaultdomain (me less its first label), plusdomain (last
            two labels), locals = localhost.<defaultdomain> and me,
            rcpthosts = locals.
    client: the same, then defaulthost = spool, me out of locals,
            smtproutes = ``:spool`` (the spool takes every message).

    CLI Example::

        salt '*' qmail_control.derive client hostname.cla.kobe-u.ac.jp spool=ccs.cla.kobe-u.ac.jp
    """
    if role not in ("spool", "client"):
        raise SaltInvocationError(f"{key}:role: {role!r} is not 'spool' or 'client'")
    _v("fqdn")(me, f"{key}:me")
    labels = me.split(".")
    wanted = {"me": me}
    if len(labels) >= 3:
        wanted["defaultdomain"] = ".".join(labels[1:])
    if len(labels) >= 2:
        wanted["plusdomain"] = ".".join(labels[-2:])
    locals_ = [f"localhost.{wanted['defaultdomain']}"] if "defaultdomain" in wanted else []
    locals_.append(me)
    wanted["locals"] = locals_
    wanted["rcpthosts"] = list(locals_)
    if role == "client":
        if not isinstance(spool, str) or not spool:
            raise SaltInvocationError(
                f"{key}:spool: the client role needs the spool host's name"
            )
        _v("mail_host")(spool, f"{key}:spool")
        if spool.lower() == me.lower():
            raise SaltInvocationError(
                f"{key}:spool: {spool!r} is this host itself; a client hands its "
                "mail to another host"
            )
        wanted["defaulthost"] = spool
        wanted["locals"] = [host for host in locals_ if host != me]
        wanted["smtproutes"] = [f":{spool}"]
    overrides = overrides if overrides is not None else {}
    if not isinstance(overrides, dict):
        raise SaltInvocationError(
            f"{key}:control: expected a mapping of file names, got {overrides!r}"
        )
    for name, value in overrides.items():
        where = f"{key}:control:{name}"
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            raise SaltInvocationError(f"{where}: not a control file name")
        _spec(name, where)
        wanted[name] = value
    if wanted["me"] is None:
        raise SaltInvocationError(
            f"{key}:control:me: qmail cannot run without control/me; it cannot be removed"
        )
    if role == "spool" and wanted.get("rcpthosts") is None:
        raise SaltInvocationError(
            f"{key}:control:rcpthosts: a spool runs qmail-smtpd, which relays for "
            "anyone without rcpthosts; give it a list (an empty list accepts no "
            "recipient)"
        )
    result = {}
    for name, value in wanted.items():
        where = f"{key}:control:{name}" if name in overrides else f"{key}:{name}"
        if value is None:
            result[name] = None
            continue
        text = normalize(name, value, where)
        # Lists stay lists so that the states can take them back as they are.
        result[name] = text.split("\n")[:-1] if _spec(name)["kind"] == "list" else text[:-1]
    return result
