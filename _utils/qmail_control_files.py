"""
The control files qmail knows (qmail-control(5)), as data (``__utils__``):
for each of the 28 files its syntax, its default when absent, the program
that reads it and what that program needs to see a change (``reload``);
``normalize`` (a value to the file's content), ``derive`` (the files of a
host's role) and ``reload_action``. Pure: nothing here reads the host or
the pillar.

The loader gives ``_utils`` modules no ``__utils__``: the callers pass
``plain``, the loader's ``qmail_validate.plain`` (the getter of the shared
validators, ``_utils/qmail_validate.py``); each call here fetches a
validator once.
"""

import functools
import re

from salt.exceptions import SaltInvocationError

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


# --------------------------------------------------------------------------
# Syntax of single values (the shared validators); each raises
# SaltInvocationError naming ``key``.
# --------------------------------------------------------------------------
def _check_host(value, key, v):
    v("host")(value, key)


def _check_me(value, key, v):
    v("fqdn")(value, key)


def _check_wildcard(value, key, v):
    """rcpthosts/morercpthosts: a host, or ``.domain`` for every subdomain
    below a public suffix."""
    v("wildcard")(value, key)


def _check_localpart(value, key, v):
    v("matches")(value, key, _LOCALPART_RE, "a local part (the part before @)")


def _check_badmailfrom(value, key, v):
    local, sep, host = value.rpartition("@")
    if not sep or not v("is_host")(host) or (local and not re.fullmatch(_LOCALPART_RE, local)):
        v("fail")(key, f"{value!r} is not an address or @host")


def _check_ipv4(value, key, v):
    v("ipv4")(value, key)


def _check_smtproute(value, key, v):
    """``domain:relay[:port]``; empty domain = all, ``.dom`` = subdomains,
    empty relay = MX, relay may be ``[1.2.3.4]``."""
    fail = v("fail")
    parts = value.split(":")
    if len(parts) not in (2, 3):
        fail(key, f"{value!r} is not domain:relay[:port]")
    domain, relay = parts[0], parts[1]
    if domain and not v("is_host")(domain.removeprefix(".")):
        fail(key, f"{value!r}: {domain!r} is not a domain or .domain")
    if relay.startswith("[") and relay.endswith("]"):
        v("relay_address")(relay[1:-1], key, value)
    elif relay and not v("is_host")(relay):
        fail(key, f"{value!r}: {relay!r} is not a relay host or [address]")
    elif relay.replace(".", "").isdigit():
        # A bare dotted quad is an address too: the same rules.
        v("relay_address")(relay, key, value)
    if len(parts) == 3:
        v("integer")(parts[2], f"{key} (port)", 1, 65535)


def _check_virtualdomain(value, key, v):
    """``domain:prepend``, ``user@domain:prepend`` or ``.dom:prepend``."""
    fail = v("fail")
    target, sep, prepend = value.rpartition(":")
    if not sep or not target:
        fail(key, f"{value!r} is not domain:prepend")
    local, at, domain = target.rpartition("@")
    if at and not re.fullmatch(_LOCALPART_RE, local):
        fail(key, f"{value!r}: {local!r} is not a user name")
    if not v("is_host")(domain.removeprefix(".")):
        fail(key, f"{value!r}: {domain!r} is not a domain or .domain")
    if domain.startswith("."):
        # qmail-send delivers every address under a wildcard locally (to the
        # prepend's user): one over a public suffix takes strangers' mail.
        v("wildcard")(domain, key, "deliver every domain under it to "
                                    f"{prepend!r} here")
    if not re.fullmatch(_PREPEND_RE, prepend):
        fail(key, f"{value!r}: {prepend!r} is not a user prefix")


def _check_text(value, key, v):
    # qmail-smtpd sends "220 <text>\r\n": RFC 5321 allows 512 octets a line.
    v("greeting")(value, key)


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


def spec(name, key="name"):
    """The catalogue entry of control file ``name``; an unknown name fails,
    naming ``key``."""
    if not isinstance(name, str) or name not in CATALOGUE:
        raise SaltInvocationError(
            f"{key}: {name!r} is not a qmail control file; known files: "
            + ", ".join(sorted(CATALOGUE))
        )
    return CATALOGUE[name]


def names():
    """Every control file qmail knows, sorted."""
    return sorted(CATALOGUE)


def default(name, me):
    """What qmail takes for control file ``name`` when the file is absent, on
    a host whose ``control/me`` says ``me`` (None: no ``me``)."""
    value = spec(name)["default"]
    if value == ME:
        return me
    if value == [ME]:
        return [me] if me else []
    return value


def validators(plain):
    """``plain`` with a memory: one loader call per validator name."""
    return functools.lru_cache(maxsize=None)(plain)


def normalize(name, value, plain, key=None):
    """
    Check ``value`` for control file ``name`` and return the file's content:
    one entry per line, a trailing newline, duplicates dropped (list files),
    comments kept where qmail allows them. Raises SaltInvocationError naming
    ``key`` (default: the file's name) on bad input.

    """
    return _normalize(name, value, validators(plain), key)


def _normalize(name, value, v, key=None):
    key = key or name
    found = spec(name, key)
    if found["kind"] == "list":
        lines = _normalize_list(found, value, key, v)
        return "".join(f"{line}\n" for line in lines)
    return _normalize_single(found, value, key, v) + "\n"


def _normalize_single(found, value, key, v):
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if found["kind"] == "int":
        return str(v("integer")(value, key, found["min"], found["max"]))
    v("string")(value, key)
    text = value.strip(" \t")
    found["check"](text, key, v)
    return text


def _normalize_list(found, value, key, v):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SaltInvocationError(
            f"{key}: expected a list of entries, got {v('type_name')(value)} {value!r}"
        )
    seen = set()
    lines = []
    check = found["check"]
    string = v("string")
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
            if not found["comments"]:
                raise SaltInvocationError(f"{where}: qmail allows no comments here")
            lines.append(entry)
            continue
        if not entry:
            raise SaltInvocationError(f"{where}: empty entry")
        check(entry, where, v)
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

    """
    return spec(name)["reload"]


# --------------------------------------------------------------------------
# Roles (the seed's §4 and §5)
# --------------------------------------------------------------------------
def derive(role, me, plain, spool=None, overrides=None, key="qmail"):
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
    """
    v = validators(plain)
    if role not in ("spool", "client"):
        raise SaltInvocationError(f"{key}:role: {role!r} is not 'spool' or 'client'")
    v("fqdn")(me, f"{key}:me")
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
        v("mail_host")(spool, f"{key}:spool")
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
        spec(name, where)
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
        text = _normalize(name, value, v, where)
        # Lists stay lists so that the states can take them back as they are.
        result[name] = text.split("\n")[:-1] if spec(name)["kind"] == "list" else text[:-1]
    return result
