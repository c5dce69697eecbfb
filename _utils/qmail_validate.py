"""
The formula's validators (``__utils__``): one place that says what a good
value is, for the settings schema (``qmail_settings.merge``) and for every
execution function called from the command line.

Each validator takes the value and the full pillar key, returns the value
in the form the formula uses (paths normalised, numbers as int) and raises
SaltInvocationError whose text starts with the key. Nothing here reads the
pillar or touches the host, except the Public Suffix List file and
``realpath`` of paths.
"""

import importlib.util
import ipaddress
import logging
import os
import re
import types

from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)


def _load_tables():
    """``qmail_validate_tables.py`` from this file's folder, executed afresh
    with this module (the loader runs ``_utils`` modules anew for each
    state run and gives them no ``__utils__``; an import would keep the
    first version for the minion's life)."""
    where = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qmail_validate_tables.py")
    spec = importlib.util.spec_from_file_location("qmail_validate_tables", where)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The tables the validators judge by: system folders, the Public Suffix List.
_tables = _load_tables()

# --------------------------------------------------------------------------
# Errors and text
# --------------------------------------------------------------------------
# qmail splits control files at "\n" only; Python's splitlines (and YAML
# readers) also break at these, so none may hide inside a value.
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_PRINTABLE_RE = re.compile(r"[\x20-\x7e]*")
# RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with "220 " and CRLF.
MAX_GREETING = 506
# qmail's control_readint keeps numbers in a C int.
MAX_INT = 2**31 - 1


def fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def plain(name):
    """
    Validator ``name`` of this module as a plain function, for the
    execution modules' ``_v``: the functions here touch no dunder, and the
    loader's per-call wrapper adds up over 100,000 rcpthosts entries, so
    hot loops fetch a validator once and call it directly.
    """
    fun = globals().get(name)
    if name.startswith("_") or not isinstance(fun, types.FunctionType):
        raise SaltInvocationError(f"qmail_validate has no validator {name!r}")
    return fun


def _got(value):
    return "null" if value is None else f"{type_name(value)} {_short(value)}"


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "...' (" + str(len(value)) + " characters)"


def string(value, key, empty_ok=False, max_length=None):
    """A one-line, printable ASCII string (spaces allowed)."""
    if not isinstance(value, str):
        fail(key, f"expected a string, got {_got(value)}")
    if not _PRINTABLE_RE.fullmatch(value):
        if any(c in value for c in _LINE_BREAKS):
            fail(key, f"{_short(value)} contains a line break")
        if any(ord(c) > 0x7E for c in value):
            fail(key, f"{_short(value)} is not ASCII (write international domain names "
                      "in punycode, xn--...)")
        fail(key, f"{_short(value)} contains a control character")
    if not empty_ok and not value.strip():
        fail(key, "empty")
    if max_length is not None and len(value) > max_length:
        fail(key, f"{_short(value)} is longer than {max_length} characters")
    return value


def greeting(value, key):
    """One line of text as qmail-smtpd sends it after "220 " (RFC 5321)."""
    return string(value, key, max_length=MAX_GREETING)


def type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def one_of(value, choices, key):
    if not isinstance(value, str) or value not in choices:
        fail(key, f"{_short(value)} is not one of " + ", ".join(choices))
    return value


def boolean(value, key):
    if not isinstance(value, bool):
        fail(key, f"expected true or false, got {_short(value)}")
    return value


def list_of(value, key):
    if not isinstance(value, list):
        fail(key, f"expected a list, got {_got(value)}")
    return value


def mapping(value, key):
    if not isinstance(value, dict):
        fail(key, f"expected a mapping, got {_got(value)}")
    return value


def each(value, key, validator, *args):
    """A list (a tuple, as a function's default, counts as one) whose items
    pass validator ``validator`` of this module (with ``args``), each
    named ``key[i]``; the checked items."""
    check = plain(validator)
    value = list(value) if isinstance(value, tuple) else value
    return [check(item, f"{key}[{i}]", *args) for i, item in enumerate(list_of(value, key))]


def optional(value, key, validator, *args):
    """None, or a value that passes validator ``validator``."""
    return None if value is None else plain(validator)(value, key, *args)


# --------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------
_DIGITS_RE = re.compile(r"[0-9]+")


def integer(value, key, minimum=0, maximum=MAX_INT):
    """A whole number (or a string of ASCII digits) within bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        fail(key, f"expected a whole number, got {_got(value)}")
    if isinstance(value, str):
        string(value, key)
        if not _DIGITS_RE.fullmatch(value.strip(" \t")):
            fail(key, f"{_short(value)} is not a whole number in ASCII digits")
        value = int(value.strip(" \t"))
    if not minimum <= value <= maximum:
        fail(key, f"{value} is out of range (from {minimum} to {maximum})")
    return value


# --------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------
_ACCOUNT_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_SERVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
_DEB_NAME_RE = re.compile(r"[a-z0-9][a-z0-9+.-]{1,127}")


def account(value, key):
    string(value, key)
    if not _ACCOUNT_RE.fullmatch(value):
        fail(key, f"{_short(value)} is not an account name (a-z, 0-9, _ and -, "
                  "at most 32 characters)")
    return value


def service_name(value, key):
    string(value, key)
    if not _SERVICE_RE.fullmatch(value):
        fail(key, f"{_short(value)} is not a service name")
    return value


def deb_name(value, key):
    string(value, key)
    if not _DEB_NAME_RE.fullmatch(value):
        fail(key, f"{_short(value)} is not a Debian package name")
    return value


def matches(value, key, pattern, what):
    string(value, key)
    if not re.fullmatch(pattern, value):
        fail(key, f"{_short(value)} is not {what}")
    return value


# Salt's minion ids as the formula accepts them (a builder, in salt:// URLs).
MINION_ID_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}"


def minion_id(value, key):
    return matches(value, key, MINION_ID_RE, "a minion id")


# --------------------------------------------------------------------------
# Host names
# --------------------------------------------------------------------------
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def is_host(value):
    return isinstance(value, str) and len(value) <= 253 and bool(_HOST_RE.fullmatch(value))


def host(value, key):
    """A DNS host name in ASCII (punycode for IDN), no trailing dot."""
    if isinstance(value, str) and len(value) <= 253 and _HOST_RE.fullmatch(value):
        return value  # the common case first: 100,000 rcpthosts
    string(value, key)
    if value.endswith("."):
        fail(key, f"{_short(value)} ends with a dot; qmail takes names without it")
    fail(key, f"{_short(value)} is not a host name")
    return None


def _is_ipv4(value):
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def fqdn(value, key):
    """A fully qualified host name: two labels at least, not an address."""
    host(value, key)
    labels = value.split(".")
    if _is_ipv4(value) or labels[-1].isdigit():
        fail(key, f"{_short(value)} is an address, not a host name")
    if len(labels) < 2:
        fail(key, f"{_short(value)} is a single label; give the fully qualified name")
    return value


def mail_host(value, key):
    """A host that mail is handed to: fully qualified and not this machine."""
    fqdn(value, key)
    if value.lower() == "localhost" or value.lower().startswith("localhost."):
        fail(key, f"{_short(value)} is this host itself (localhost)")
    return value


def ipv4(value, key):
    string(value, key)
    if not _is_ipv4(value):
        fail(key, f"{_short(value)} is not an IPv4 address")
    return value


# --------------------------------------------------------------------------
# Public suffixes: a wildcard (.domain) must sit below one
# (_utils/qmail_validate_tables.py)
# --------------------------------------------------------------------------
def wildcard(value, key, harm="relay for every domain under it"):
    """A ``.domain`` entry (every subdomain): the domain must lie below a
    public suffix, judged by the Public Suffix List. ``harm`` says what
    covering a public suffix would do."""
    if not isinstance(value, str) or value[:1] != ".":
        return host(value, key)
    host(value[1:], key)
    path_ = _tables.psl_path()
    if path_ is None:
        fail(key, f"{_short(value)}: a wildcard needs the Public Suffix List to be judged; "
                  f"install the publicsuffix package ({_tables.PSL_FILES[0]}) "
                  "or list the hosts one by one")
    domain = value[1:].lower()
    psl = _tables.load_psl(path_)
    suffix = _tables.public_suffix(domain, psl)
    if domain.count(".") <= suffix.count("."):
        fail(key, f"{_short(value)} covers the public suffix {suffix!r}: that would {harm}")
    # A rule "*.domain" makes every name right under it a public suffix
    # (kobe.jp: *.kobe.jp), and the wildcard covers them all.
    if _tables.public_suffix("x." + domain, psl).count(".") > domain.count("."):
        fail(key, f"{_short(value)} covers the public suffixes '*.{domain}': that would {harm}")
    return value


# --------------------------------------------------------------------------
# Relay networks
# --------------------------------------------------------------------------
MIN_RELAY_PREFIX = 8


def relay_networks(value, key, ipv6=None):
    """IPv4 networks (CIDR); together at most one /8. IPv6 entries only
    with ``ipv6``, a check of one (``_utils/qmail_ipv6.py`` ``relay_address``
    with the setting bound), whose result is kept in their place."""
    list_of(value, key)
    nets = []
    for index, entry in enumerate(value):
        where = f"{key}[{index}]"
        string(entry, where)
        try:
            net = ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            fail(where, f"{_short(entry)} is not an IP address or network ({exc})")
        if net.version != 4:
            if ipv6 is None:
                fail(where, f"{_short(entry)}: only IPv4 is supported by tcpserver")
            nets.append(ipv6(net, entry, where))
            continue
        if net.prefixlen < MIN_RELAY_PREFIX:
            fail(where, f"{_short(entry)} is wider than /{MIN_RELAY_PREFIX}; that is close "
                        "to an open relay")
        nets.append(net)
    four = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    total = sum(n.num_addresses for n in ipaddress.collapse_addresses(four))
    if total > 2 ** (32 - MIN_RELAY_PREFIX):
        fail(key, f"together the networks cover {total} addresses, more than one "
                  f"/{MIN_RELAY_PREFIX}; that is close to an open relay")
    return nets


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------
_PATH_RE = re.compile(r"[A-Za-z0-9._+@,=/-]+")
def normpath(value):
    """``value`` with ``//``, ``.`` and ``..`` resolved (no filesystem access)."""
    path = os.path.normpath(value)
    return "/" + path.lstrip("/") if path.startswith("/") else path


def path(value, key):
    """An absolute path in a safe character set, returned normalised."""
    string(value, key)
    if not _PATH_RE.fullmatch(value):
        bad = sorted({c for c in value if not _PATH_RE.fullmatch(c)})
        fail(key, f"{_short(value)} contains {''.join(bad)!r}; a path may hold only "
                  "A-Z a-z 0-9 and / . _ - + @ , =")
    if not value.startswith("/"):
        fail(key, f"{_short(value)} is not an absolute path")
    return path_length(normpath(value), key)


def own_dir(value, key):
    """A folder the formula creates and may remove: not a system folder,
    not one that holds one, not inside one (symlinks followed too)."""
    path_ = path(value, key)
    for candidate in _tables.candidates(path_):
        via = "" if candidate == path_ else f" (through a symlink to {candidate})"
        system = _tables.holds_system(candidate)
        if system == candidate:
            fail(key, f"{_short(value)} is the system folder {system}{via}, not a folder of "
                      "the formula's own")
        if system:
            fail(key, f"{_short(value)} holds the system folder {system}{via}")
        system = _tables.inside_system(candidate)
        if system:
            fail(key, f"{_short(value)} lies inside the system folder {system}{via}")
    return no_file_there(path_, key)


def system_file(value, key):
    """A file of the system the formula edits, links or moves (rc.conf,
    /usr/sbin/sendmail): never a system folder or one holding them."""
    path_ = path(value, key)
    for candidate in _tables.candidates(path_):
        system = _tables.holds_system(candidate)
        if system:
            fail(key, f"{_short(value)} is or holds the system folder {system}, not a file")
    return path_


def existing_dir(value, key):
    """An absolute path to a folder that exists (execution arguments)."""
    path_ = path(value, key)
    if not os.path.isdir(path_):
        fail(key, f"{path_} is not a folder")
    return path_


def existing_file(value, key):
    """An absolute path to a regular file that exists (execution arguments)."""
    path_ = path(value, key)
    if not os.path.isfile(path_):
        fail(key, f"{path_} is not a file")
    return path_


def fields(value, key, names):
    """A mapping that holds at least the keys ``names``."""
    mapping(value, key)
    missing = [name for name in names if name not in value]
    if missing:
        fail(key, "missing " + ", ".join(f"{key}:{name}" for name in missing))
    return value


def names(value, key, pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", what="a name"):
    """A list of names (make targets, services...), each in ``pattern``."""
    return [matches(item, f"{key}[{i}]", pattern, what)
            for i, item in enumerate(list_of(value, key))]


# No part may start with a dot: no "." or "..", no hidden files.
_SALT_PATH_RE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*")


def salt_path(value, key):
    """A path inside the file server (TOFS): relative, no ``.``/``..`` part."""
    return matches(value, key, _SALT_PATH_RE.pattern,
                   "a relative salt:// path (letters, digits, _ . + -; "
                   "no part starting with a dot)")


def tofs(value, key):
    """The ``qmail:tofs`` settings: grain names, and paths in the file server."""
    fields(value, key, ("files_switch", "path_prefix", "dirs", "source_files"))
    names(value["files_switch"], f"{key}:files_switch",
          r"[A-Za-z0-9_][A-Za-z0-9_:.-]{0,63}", "a grain name")
    salt_path(value["path_prefix"], f"{key}:path_prefix")
    fields(value["dirs"], f"{key}:dirs", ("files", "default"))
    for name in ("files", "default"):
        salt_path(value["dirs"][name], f"{key}:dirs:{name}")
    for name, files in mapping(value["source_files"], f"{key}:source_files").items():
        where = f"{key}:source_files:{name}"
        matches(name, where, r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", "a file key")
        for i, item in enumerate(list_of(files, where)):
            salt_path(item, f"{where}[{i}]")
    return value


def inside(child, parent):
    return child == parent or child.startswith(parent.rstrip("/") + "/")


# --------------------------------------------------------------------------
# Control file lines
# --------------------------------------------------------------------------
def split_lines(data):
    """Entries as qmail reads them: split at b"\\n" only."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


# --------------------------------------------------------------------------
# Path lengths: a name the kernel refuses fails here, naming the key, not
# later as ENAMETOOLONG inside a state
# --------------------------------------------------------------------------
NAME_MAX = 255  # bytes in one file name (Linux, the BSDs)
PATH_MAX = 4095  # bytes in a whole path, without its terminating NUL


def path_length(path_, key):
    """``path_`` (ASCII: ``path`` checked it) within NAME_MAX and PATH_MAX."""
    if len(path_) > PATH_MAX:
        fail(key, f"{_short(path_)} is longer than {PATH_MAX} characters (PATH_MAX)")
    longest = max(path_.split("/"), key=len)
    if len(longest) > NAME_MAX:
        fail(key, f"{_short(path_)} holds a name of {len(longest)} characters; a file name "
                  f"has at most {NAME_MAX} (NAME_MAX)")
    return path_


def no_file_there(path_, key):
    """A folder the formula will create: whatever is there must be a folder
    (or a symlink to one); a file there would fail a state half-way."""
    if os.path.lexists(path_) and not os.path.isdir(path_):
        fail(key, f"{path_} is a file, not a folder")
    return path_


# --------------------------------------------------------------------------
# .qmail deliveries (dot-qmail(5)): a line starting with "." or "/" is a
# file (mbox) or, ending in "/", a Maildir delivery, written by qmail-local
# as the user. Only "./"-relative paths without ".." stay inside the home.
# --------------------------------------------------------------------------
def is_file_delivery(line):
    return line.startswith((".", "/"))


def file_delivery(line, key, home_word="the user's home"):
    """A file or Maildir delivery ``./path[/]``: the path below the home."""
    if not line.startswith("./"):
        fail(key, f"{_short(line)} is a file delivery outside {home_word}: write it "
                  "./-relative (./Maildir/, ./Mailbox)")
    parts = line[2:].rstrip("/").split("/")
    if ".." in parts or "." in parts:
        fail(key, f"{_short(line)} has a '.' or '..' part: a delivery stays inside "
                  f"{home_word}")
    if parts == [""]:
        fail(key, f"{_short(line)} is {home_word} itself, not a file or Maildir in it")
    path(normpath("/" + line[2:]), key)  # the character set of paths
    return line


# --------------------------------------------------------------------------
# Relaying: addresses qmail-remote may be sent to, domains percenthack may
# name
# --------------------------------------------------------------------------
def relay_address(value, key, entry):
    """An IPv4 address qmail-remote can connect to as a relay (smtproutes
    ``[1.2.3.4]``): not "this host, any address" (0.0.0.0/8, where a
    connect reaches whatever listens locally), broadcast or multicast."""
    ipv4(value, key)
    address = ipaddress.IPv4Address(value)
    if address in ipaddress.IPv4Network("0.0.0.0/8"):
        fail(key, f"{_short(entry)}: {value} is an unspecified address (0.0.0.0/8), "
                  "not a relay")
    if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        fail(key, f"{_short(entry)}: {value} is a multicast or broadcast address, "
                  "not a relay")
    return value


# Which rcpthosts entry accepts mail for a domain (a lookup, for percenthack).
covered_by = _tables.covered_by


# --------------------------------------------------------------------------
# Sources: where the tarball comes from
# --------------------------------------------------------------------------
_URL_SCHEMES = ("https", "http", "ftp", "salt")
_URL_CHARS_RE = re.compile(r"[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+")


def source_path(value, key):
    """A local tarball: an absolute path as ``path`` takes it, but without
    ``.`` or ``..`` parts: what the pillar names is what is read."""
    path_ = path(value, key)
    if path_ != value:
        fail(key, f"{_short(value)} is not a canonical path (no //, . or .. parts, no "
                  f"trailing /): it means {_short(path_)}")
    return path_


def source_url(value, key):
    """
    Where the source comes from: an absolute path, ``file:///path`` (taken
    as that path), or an https/http/ftp/salt URL without credentials.
    Returns the canonical form (a ``file://`` URL as its path). Errors never
    show a URL's credentials.
    """
    string(value, key)
    if value.startswith("/"):
        return source_path(value, key)
    scheme, sep, rest = value.partition("://")
    if scheme == "file" and sep:
        # file://HOST/path: a host part ("file://etc/shadow" is the path
        # /shadow on host "etc") is no local file; say so rather than guess.
        host_part, slash, local = rest.partition("/")
        if host_part not in ("", "localhost") or not slash:
            fail(key, f"{_short(value)} names the host {host_part!r}; a local file is "
                      "file:///absolute/path")
        return source_path("/" + local, key)
    if scheme not in _URL_SCHEMES or not sep:
        fail(key, f"{_short(value)} is not an https://, http://, ftp://, salt:// URL, "
                  "file:///path or an absolute path")
    authority, _, tail = rest.partition("/")
    if "@" in authority:
        # The value itself is not shown: it holds a password.
        fail(key, f"a {scheme}:// URL with credentials (user:password@host): a "
                  "password does not belong in the pillar's source URL; serve the "
                  "tarball from salt:// or a path on the minion")
    if not _URL_CHARS_RE.fullmatch(value):
        fail(key, f"{_short(value)} holds characters a URL may not hold")
    if scheme != "salt" and not is_host(authority.rsplit(":", 1)[0] if (
            authority.count(":") == 1) else authority):
        fail(key, f"{_short(value)}: {authority!r} is not a host[:port]")
    if ".." in tail.split("?")[0].split("/"):
        fail(key, f"{_short(value)} has a '..' part")
    return value
