"""
What the validators of ``_utils/qmail_validate.py`` judge by, as data: the
system's folders (never the formula's own), the Public Suffix List (parsed
once per process and file version) and which rcpthosts entry covers a
domain. Pure lookups: no validator here, nothing that names a pillar key.

``qmail_validate`` executes this file with itself (the loader gives
``_utils`` modules no ``__utils__``); it is a utils module of its own too.
"""

import os
import sys
import types

# --------------------------------------------------------------------------
# System folders
# --------------------------------------------------------------------------
# Folders of the system: never the formula's own, nor may one of the
# formula's own folders hold them (removing it would remove them).
SYSTEM_DIRS = frozenset((
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
    "/usr", "/usr/bin", "/usr/games", "/usr/include", "/usr/lib", "/usr/lib32",
    "/usr/lib64", "/usr/libexec", "/usr/local", "/usr/local/bin", "/usr/local/etc",
    "/usr/local/include", "/usr/local/lib", "/usr/local/man", "/usr/local/sbin",
    "/usr/local/share", "/usr/local/src", "/usr/sbin", "/usr/share", "/usr/src", "/var",
    "/var/backups", "/var/cache", "/var/db", "/var/empty", "/var/lib", "/var/local",
    "/var/lock", "/var/log", "/var/mail", "/var/opt", "/var/run", "/var/spool",
    "/var/tmp", "/var/lib/dpkg", "/var/lib/apt", "/var/lib/rpm", "/var/lib/systemd",
    "/var/cache/apt",
))
# Folders whose insides belong to the system or its packages.
SYSTEM_INSIDES = (
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/proc", "/root", "/run", "/sbin", "/sys", "/usr/bin", "/usr/games",
    "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec", "/usr/sbin",
    "/usr/share", "/usr/local/bin", "/usr/local/etc", "/usr/local/include",
    "/usr/local/lib", "/usr/local/sbin", "/usr/local/share", "/var/cache/apt",
    "/var/lib/apt", "/var/lib/dpkg", "/var/lib/rpm", "/var/lib/systemd", "/var/lock",
    "/var/log", "/var/mail", "/var/run", "/var/spool",
)


def holds_system(path_):
    if path_ in SYSTEM_DIRS:
        return path_
    for system in SYSTEM_DIRS:
        if system.startswith(path_.rstrip("/") + "/"):
            return system
    return None


def inside_system(path_):
    for system in SYSTEM_INSIDES:
        if path_.startswith(system + "/"):
            return system
    return None


def candidates(path_):
    """The path, and where it really leads when symlinks are on the way."""
    real = os.path.realpath(path_)
    return [path_] if real == path_ else [path_, real]


# --------------------------------------------------------------------------
# Public suffixes: a wildcard (.domain) must sit below one
# --------------------------------------------------------------------------
PSL_FILES = ("/usr/share/publicsuffix/public_suffix_list.dat",)


def _ascii_rule(rule):
    if rule.isascii():
        return rule.lower()
    try:
        return rule.encode("idna").decode("ascii").lower()
    except UnicodeError:
        labels = []
        for label in rule.split("."):
            if label.isascii():
                labels.append(label.lower())
            else:
                labels.append("xn--" + label.encode("punycode").decode("ascii"))
        return ".".join(labels)


# Salt's loader executes this module anew for every state run: the parsed
# list is kept for the process in a module of its own, keyed by the file's
# identity, so that a changed list is read again.
_CACHE = sys.modules.setdefault("_qmail_validate_psl_cache", types.ModuleType("psl"))


def load_psl(path):
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size, st.st_ino)
    cached = getattr(_CACHE, "psl", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    psl = _parse_psl(path)
    _CACHE.psl = (key, psl)
    return psl


def _parse_psl(path):
    rules, wild, exceptions = set(), set(), set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            rule = line.split()[0] if line.split() else ""
            if not rule or rule.startswith("//"):
                continue
            if rule.startswith("!"):
                exceptions.add(_ascii_rule(rule[1:]))
            elif rule.startswith("*."):
                wild.add(_ascii_rule(rule[2:]))
            else:
                rules.add(_ascii_rule(rule))
    return frozenset(rules), frozenset(wild), frozenset(exceptions)


def psl_path():
    for path in PSL_FILES:
        if os.path.isfile(path):
            return path
    return None


def public_suffix(domain, psl):
    """The public suffix of ``domain`` (lower case ASCII) by the PSL algorithm."""
    rules, wild, exceptions = psl
    labels = domain.lower().split(".")
    best = 1  # the implicit rule "*": the top-level label
    for i in range(len(labels)):
        name = ".".join(labels[i:])
        count = len(labels) - i
        if name in exceptions:
            return ".".join(labels[i + 1:])
        if name in rules:
            best = max(best, count)
        if i + 1 < len(labels) and ".".join(labels[i + 1:]) in wild:
            best = max(best, count)
    return ".".join(labels[-best:])


def covered_by(domain, hosts):
    """The entry of ``hosts`` (a set of lower case rcpthosts entries, host or
    ``.domain``) that accepts mail for ``domain``, or None."""
    domain = domain.lower()
    if domain in hosts:
        return domain
    labels = domain.split(".")
    for i in range(1, len(labels)):
        wild = "." + ".".join(labels[i:])
        if wild in hosts:
            return wild
    return None
