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
import ipaddress
import os
import re

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "qmail_control"
__func_alias__ = {"list_": "list"}

DEFAULT_HOME = "/var/qmail"

# One label of a DNS name: letters, digits, inner hyphens (RFC 1123).
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
# A local part as qmail takes it in addresses (no spaces, @, : or control chars).
_LOCALPART_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_PREPEND_RE = re.compile(r"^[A-Za-z0-9._+-]+$")

# reload actions: what qmail must be told after a change
HUP = "hup"  # qmail-send re-reads locals and virtualdomains on SIGHUP
RESTART = "restart"  # other qmail-send files are read only at start
NEWMRH = "newmrh"  # morercpthosts is read through morercpthosts.cdb


def __virtual__():
    return __virtualname__


# --------------------------------------------------------------------------
# Syntax of single values; each returns an error text or None.
# --------------------------------------------------------------------------
def _is_host(value):
    return len(value) <= 253 and bool(_HOST_RE.match(value))


def _check_host(value):
    if not _is_host(value):
        return f"{value!r} is not a host name"
    return None


def _check_host_or_wildcard(value):
    """rcpthosts/morercpthosts: a host or ``.domain`` for every subdomain."""
    if not _is_host(value.removeprefix(".")):
        return f"{value!r} is not a host name or .domain"
    return None


def _check_localpart(value):
    if not _LOCALPART_RE.match(value):
        return f"{value!r} is not a local part (the part before @)"
    return None


def _check_badmailfrom(value):
    local, sep, host = value.rpartition("@")
    if not sep or not _is_host(host) or (local and not _LOCALPART_RE.match(local)):
        return f"{value!r} is not an address or @host"
    return None


def _check_ipv4(value):
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return f"{value!r} is not an IPv4 address"
    return None


def _check_relay(relay):
    if relay.startswith("[") and relay.endswith("]"):
        return _check_ipv4(relay[1:-1])
    return _check_host(relay)


def _check_smtproute(value):
    """``domain:relay[:port]``; empty domain = all, ``.dom`` = subdomains,
    empty relay = MX, relay may be ``[1.2.3.4]``."""
    parts = value.split(":")
    if len(parts) not in (2, 3):
        return f"{value!r} is not domain:relay[:port]"
    domain, relay = parts[0], parts[1]
    if domain and not _is_host(domain.removeprefix(".")):
        return f"{value!r}: {domain!r} is not a domain or .domain"
    if relay and _check_relay(relay):
        return f"{value!r}: {relay!r} is not a relay host or [address]"
    if len(parts) == 3:
        port = parts[2]
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            return f"{value!r}: port {port!r} is not between 1 and 65535"
    return None


def _check_virtualdomain(value):
    """``domain:prepend``, ``user@domain:prepend`` or ``.dom:prepend``."""
    target, sep, prepend = value.rpartition(":")
    if not sep or not target:
        return f"{value!r} is not domain:prepend"
    local, at, domain = target.rpartition("@")
    if at and not _LOCALPART_RE.match(local):
        return f"{value!r}: {local!r} is not a user name"
    if not _is_host(domain.removeprefix(".")):
        return f"{value!r}: {domain!r} is not a domain or .domain"
    if not _PREPEND_RE.match(prepend):
        return f"{value!r}: {prepend!r} is not a user prefix"
    return None


def _check_text(value):
    if not value.strip():
        return "empty text"
    return None


# --------------------------------------------------------------------------
# The catalogue. kind: "host" (one value), "text", "int", or "list".
# --------------------------------------------------------------------------
def _single(check, default, reader, reload=None):
    return {"kind": "single", "check": check, "default": default,
            "reader": reader, "reload": reload}


def _number(default, reader, minimum, maximum=None, reload=None):
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
    "me": _single(_check_host, None, "qmail-send", RESTART),
    "morercpthosts": _list(_check_host_or_wildcard, None, "qmail-smtpd", False, NEWMRH),
    "percenthack": _list(_check_host, None, "qmail-send", True, RESTART),
    "plusdomain": _single(_check_host, ME, "qmail-inject"),
    "qmqpservers": _list(_check_ipv4, None, "qmail-qmqpc", True),
    "queuelifetime": _number(604800, "qmail-send", 0, None, RESTART),
    # Absent rcpthosts makes qmail-smtpd accept every recipient: open relay.
    "rcpthosts": _list(_check_host_or_wildcard, None, "qmail-smtpd", True),
    "smtpgreeting": _single(_check_text, ME, "qmail-smtpd"),
    "smtproutes": _list(_check_smtproute, None, "qmail-remote", True),
    "timeoutconnect": _number(60, "qmail-remote", 1),
    "timeoutremote": _number(1200, "qmail-remote", 1),
    "timeoutsmtpd": _number(1200, "qmail-smtpd", 1),
    "virtualdomains": _list(_check_virtualdomain, None, "qmail-send", True, HUP),
}


def _home(home=None):
    if home:
        return home
    return __salt__["config.get"]("qmail:lookup:home", DEFAULT_HOME) or DEFAULT_HOME


def _control_dir(home=None):
    return os.path.join(_home(home), "control")


def _spec(name, key=None):
    key = key or name
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


_CONTROL_CHAR_RE = re.compile(r"[\x00-\x1f\x7f]")


def _reject_control_chars(text, key):
    # A newline inside one entry would smuggle in a second one (rcpthosts!).
    if _CONTROL_CHAR_RE.search(text):
        if "\n" in text or "\r" in text:
            raise SaltInvocationError(f"{key}: {text!r} contains a line break")
        raise SaltInvocationError(f"{key}: {text!r} contains a control character")


def _normalize_single(spec, value, key):
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if spec["kind"] == "int":
        return str(_integer(spec, value, key))
    if not isinstance(value, str):
        raise SaltInvocationError(
            f"{key}: expected a string, got {type(value).__name__} {value!r}"
        )
    _reject_control_chars(value, key)
    text = value.strip()
    error = spec["check"](text)
    if error:
        raise SaltInvocationError(f"{key}: {error}")
    return text


def _integer(spec, value, key):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SaltInvocationError(f"{key}: expected a whole number, got {value!r}")
    if isinstance(value, str):
        _reject_control_chars(value, key)
        if not value.strip().isdigit():
            raise SaltInvocationError(f"{key}: {value!r} is not a whole number")
        value = int(value.strip())
    if value < spec["min"] or (spec["max"] is not None and value > spec["max"]):
        if spec["max"] is None:
            allowed = f"at least {spec['min']}"
        else:
            allowed = f"from {spec['min']} to {spec['max']}"
        raise SaltInvocationError(f"{key}: {value} is out of range ({allowed})")
    return value


def _normalize_list(spec, value, key):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SaltInvocationError(
            f"{key}: expected a list of entries, got {type(value).__name__} {value!r}"
        )
    seen = set()
    lines = []
    check = spec["check"]
    for index, entry in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(entry, str):
            raise SaltInvocationError(f"{where}: expected a string, got {entry!r}")
        _reject_control_chars(entry, where)
        entry = entry.strip()
        if entry.startswith("#"):
            if not spec["comments"]:
                raise SaltInvocationError(f"{where}: qmail allows no comments here")
            lines.append(entry)
            continue
        error = check(entry) if entry else "empty entry"
        if error:
            raise SaltInvocationError(f"{where}: {error}")
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


def read(name, home=None):
    """
    Return the content of control file ``name``, or None when it is absent.

    CLI Example::

        salt '*' qmail_control.read me
    """
    try:
        with open(_path(name, home), encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


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
    return _changes(name, text, home)


def _changes(name, text, home):
    path = _path(name, home)
    old = read(name, home)
    changes = {}
    if old != text:
        changes["diff"] = _diff(name, old, text)
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


def _diff(name, old, new):
    """A unified diff of the change; a new or removed file diffs against nothing."""
    if new is None:
        return "Removed"
    lines = list(difflib.unified_diff(
        (old or "").splitlines(keepends=True), new.splitlines(keepends=True),
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
    root). Returns the changes made, as ``check_changes`` predicts them.

    CLI Example::

        salt '*' qmail_control.write concurrencyremote 40
        salt '*' qmail_control.write rcpthosts '[example.com, .example.com]'
    """
    text = normalize(name, value)
    changes = _changes(name, text, home)
    if changes:
        try:
            __utils__["qmail_files.atomic_write"](
                _path(name, home), text.encode("utf-8"), mode=0o644, uid=0
            )
        except OSError as exc:
            # atomic_write only renames a complete file: the old one stays.
            raise CommandExecutionError(
                f"cannot write {_path(name, home)}: {exc.strerror or exc}; "
                "the file keeps its old content") from exc
    return changes


def check_remove(name, home=None):
    """
    Predict what removing control file ``name`` would change.

    CLI Example::

        salt '*' qmail_control.check_remove smtproutes
    """
    old = read(name, home)
    if old is None:
        return {}
    changes = {"diff": _diff(name, old, None), "old": old}
    if reload_action(name):
        changes["reload"] = reload_action(name)
    return changes


def remove(name, home=None):
    """
    Remove control file ``name``; qmail then uses the file's default.

    CLI Example::

        salt '*' qmail_control.remove smtproutes
    """
    changes = check_remove(name, home)
    if changes:
        try:
            os.unlink(_path(name, home))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CommandExecutionError(f"cannot remove {_path(name, home)}: {exc}") from exc
    return changes


def _parse(spec, text):
    lines = [line.strip() for line in text.splitlines()]
    if spec["kind"] == "list":
        if spec["comments"]:
            return [line for line in lines if line and not line.startswith("#")]
        return [line for line in lines if line]
    first = lines[0] if lines else ""
    if spec["kind"] == "int":
        return int(first) if first.isdigit() else 0
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
        present[name] = _parse(CATALOGUE[name], read(name, home) or "")
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
    if not isinstance(me, str) or not _is_host(me):
        raise SaltInvocationError(f"{key}:me: {me!r} is not a host name")
    labels = me.rstrip(".").split(".")
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
        if not _is_host(spool):
            raise SaltInvocationError(f"{key}:spool: {spool!r} is not a host name")
        if spool.rstrip(".").lower() == me.rstrip(".").lower():
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
        result[name] = text.splitlines() if _spec(name)["kind"] == "list" else text[:-1]
    return result
