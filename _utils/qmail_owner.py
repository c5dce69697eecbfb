"""
What the formula owns (``__utils__``): the checks that a value of the right
form points at something that is the formula's, or qmail's, and nothing
else's (issue 19). ``qmail_settings`` calls ``check`` while the SLS files
render, after every value has passed its form check.

The rules are data (``qmail/parameters/``, key ``owns``, never the pillar):

- sendmail paths and links: where sendmail, a link to it, or nothing
  stands; judged by the name (``sendmail*``) of the path or of the file it
  leads to, and, where the package manager knows the file (``dpkg-query
  -S``, ``rpm -qf``), by its package (an MTA's);
- sendmail services and alternatives groups: sendmail's names only;
- accounts and groups: never uid/gid 0, never a name the system reserves,
  never an existing account the formula did not create (its ledger) unless
  it has qmail's shape (no login shell, home in the qmail home or none);
- files and folders the formula writes: under the roots of their kind,
  with the names of their kind, never on or in a file of the system
  (``owns:never``), never in the qmail home, never two keys on one path;
- the dummy MTA package: no real package's name.

The host is read (``lstat``, ``realpath``, ``pwd``, ``grp``, one package
manager query per existing sendmail path or package name); nothing is
written.
"""

import fnmatch
import grp
import json
import logging
import os
import pwd
import shutil
import subprocess

from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)

# lookup key (below qmail:lookup) -> place kind of owns:places.
FILE_KEYS = {
    "sendmail_journal": "state",
    "ledger": "state",
    "sendmail_rc_conf": "rc_conf",
    "sendmail_sysconfig": "sysconfig",
    "sendmail_irix_config": "irix_config",
    "sendmail_mailer_conf": "mailer_conf",
    "service:unit_dir": "units",
    "service:service_dir": "svscan",
    "service:tcp_rules": "tcp_rules",
    "service:inetd_conf": "inetd_conf",
    "service:boot_script": "boot_script",
    "service:tls_dir": "tls",
    "service:log_dir": "log",
}
# Folders the formula fills (and may remove): no other key's file inside.
FOLDER_KEYS = ("qmail:lookup:service:tls_dir", "qmail:lookup:service:log_dir",
               "qmail:build:workdir")
TIMEOUT = 20


def fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def _inside(child, parent):
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def _matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _candidates(path):
    real = os.path.realpath(path)
    return [path] if real == path else [path, real]


# --------------------------------------------------------------------------
# Package managers (the cheap queries only)
# --------------------------------------------------------------------------
def _run(cmd):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False, env=dict(os.environ, LC_ALL="C"))
    except (OSError, subprocess.SubprocessError):
        return None
    return proc


def package_of(path):
    """The package that installed ``path`` (dpkg or rpm), or None (no
    package manager, or no package has it)."""
    if shutil.which("dpkg-query"):
        # dpkg knows a file by the path it was unpacked to (usr-merge: /bin
        # and /usr/bin lead to one file): ask for every spelling.
        names = {path}
        for top in ("/bin/", "/sbin/", "/lib/"):
            if path.startswith("/usr" + top):
                names.add(path[4:])
            elif path.startswith(top):
                names.add("/usr" + path)
        for name in sorted(names):
            proc = _run(["dpkg-query", "-S", name])
            if proc is not None and proc.returncode == 0:
                line = proc.stdout.splitlines()[0] if proc.stdout else ""
                if line.startswith("diversion by "):
                    return line.split()[2]
                return line.split(":")[0].split(",")[0].strip() or None
        return None
    if shutil.which("rpm"):
        proc = _run(["rpm", "-qf", "--qf", "%{NAME}\n", path])
        if proc is not None and proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.splitlines()[0].strip()
    return None


def package_known(name):
    """True when ``name`` is a package installed or known to the package
    manager (dpkg-query -W, apt-cache show; rpm -q)."""
    if shutil.which("dpkg-query"):
        proc = _run(["dpkg-query", "-W", name])
        if proc is not None and proc.returncode == 0 and proc.stdout.strip():
            return True
        if shutil.which("apt-cache"):
            proc = _run(["apt-cache", "show", "--no-all-versions", name])
            if proc is not None and proc.returncode == 0 and proc.stdout.strip():
                return True
        return False
    if shutil.which("rpm"):
        proc = _run(["rpm", "-q", name])
        return proc is not None and proc.returncode == 0
    return False


# --------------------------------------------------------------------------
# The ledger (read only here; see _utils/qmail_ledger.py)
# --------------------------------------------------------------------------
def _ledger(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _listed(ledger, kind, name):
    entries = ledger.get(kind)
    return isinstance(entries, (list, dict)) and name in entries


# --------------------------------------------------------------------------
# sendmail
# --------------------------------------------------------------------------
def sendmail_place(path, key, owns, home):
    """``path`` holds sendmail, a link to it (or to qmail's front end), or
    nothing."""
    if not os.path.lexists(path):
        return
    real = os.path.realpath(path)
    if _inside(real, os.path.join(home, "bin")):
        return  # qmail's own front end: the formula's link
    names = owns["sendmail_names"]
    if os.path.isdir(real):
        fail(key, f"{path!r} is a folder, not a sendmail binary")
    if not (_matches(os.path.basename(path), names) or _matches(os.path.basename(real), names)):
        via = "" if real == path else f" (it leads to {real})"
        fail(key, f"{path!r} is not a sendmail binary{via}: neither it nor the file it "
                  "leads to is named " + " or ".join(names) + "; the formula moves only "
                  "sendmail aside")
    package = package_of(real)
    if package is not None and not _matches(package, owns["mta_packages"]):
        fail(key, f"{path!r} is not a sendmail binary: {real} belongs to the package "
                  f"{package!r}, which is no mail transport agent")


def sendmail_names(lookup, owns):
    key = "qmail:lookup"
    for i, service in enumerate(lookup["sendmail_services"]):
        if not _matches(service, owns["sendmail_services"]):
            fail(f"{key}:sendmail_services[{i}]",
                 f"{service!r} is not sendmail's service (names: "
                 + ", ".join(owns["sendmail_services"]) + ")")
    for i, alt in enumerate(lookup["sendmail_alternatives"]):
        where = f"{key}:sendmail_alternatives[{i}]"
        if not _matches(alt["name"], owns["alternatives"]):
            fail(f"{where}:name", f"{alt['name']!r} is not a mail alternatives group (names: "
                                  + ", ".join(owns["alternatives"]) + ")")
        for j, slave in enumerate(alt["slaves"]):
            if not _matches(slave["name"], owns["alternatives"]):
                fail(f"{where}:slaves[{j}]:name",
                     f"{slave['name']!r} is not a mail alternative (names: "
                     + ", ".join(owns["alternatives"]) + ")")


# --------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------
def nologin_shell(shell, key, owns):
    if shell not in owns["nologin_shells"] and not _matches(
            os.path.basename(shell), owns["nologin_names"]):
        fail(key, f"{shell!r} is not a shell that refuses logins (nologin, false)")


def _qmail_shaped(entry, home, owns):
    shell_ok = entry.pw_shell in owns["nologin_shells"] or _matches(
        os.path.basename(entry.pw_shell), owns["nologin_names"])
    home_ok = _inside(os.path.normpath(entry.pw_dir or "/"), home) or not os.path.exists(
        entry.pw_dir or "/")
    return shell_ok and home_ok


def accounts(lookup, owns, ledger):
    key = "qmail:lookup"
    home = lookup["home"]
    reserved = owns["reserved_accounts"]
    users = dict(lookup["users"])
    own_users = set(users.values())
    for name_key, name in sorted(users.items()):
        where = f"{key}:users:{name_key}"
        if _matches(name, reserved):
            fail(where, f"{name!r} is an account the system reserves; qmail's accounts are "
                        "its own (e.g. qmaild)")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            fail(where, f"{name!r} has uid 0: qmail never runs as root")
        if _listed(ledger, "users", name):
            continue
        if not _qmail_shaped(entry, home, owns):
            fail(where, f"{name!r} is an existing account that the formula did not create "
                        f"and that is not qmail's (home {entry.pw_dir}, shell "
                        f"{entry.pw_shell}): user.present would change it and clean "
                        "remove it; pick a name of qmail's own")
    for name_key, name in sorted(lookup["groups"].items()):
        where = f"{key}:groups:{name_key}"
        if _matches(name, reserved):
            fail(where, f"{name!r} is a group the system reserves; qmail's groups are its "
                        "own (e.g. qmail, nofiles)")
        try:
            entry = grp.getgrnam(name)
        except KeyError:
            continue
        if entry.gr_gid == 0:
            fail(where, f"{name!r} has gid 0: qmail's groups are never root's")
        if _listed(ledger, "groups", name):
            continue
        primary = [p for p in pwd.getpwall() if p.pw_gid == entry.gr_gid]
        others = sorted(set(entry.gr_mem) - own_users)
        others += sorted(p.pw_name for p in primary if p.pw_name not in own_users)
        if others:
            fail(where, f"{name!r} is an existing group that the formula did not create, "
                        f"with members of its own ({', '.join(others[:5])}): qmail's "
                        "programs would get their rights and clean would remove it")
        if not any(_qmail_shaped(p, home, owns) for p in primary):
            fail(where, f"{name!r} is an existing group that the formula did not create "
                        "and that no qmail account has as its group: it belongs to "
                        "something else; pick a name of qmail's own")


# --------------------------------------------------------------------------
# Files and folders
# --------------------------------------------------------------------------
def _under_place(path, place):
    """True when ``path`` lies where the place kind allows."""
    for root in place["roots"]:
        root = root.rstrip("/") or "/"
        if place["part"] == "self":
            if path == root:
                return True
            continue
        if not _inside(path, root) or path == root:
            continue
        rest = path[len(root):].lstrip("/")
        name = rest.split("/")[0] if place["part"] == "first" else os.path.basename(path)
        if _matches(name, place["names"]):
            return True
    return False


def _describe(place):
    roots = ", ".join(place["roots"])
    if place["part"] == "self":
        return f"one of {roots}"
    what = "a folder" if place["part"] == "first" else "a file"
    return f"{what} named " + " or ".join(place["names"]) + f" under {roots}"


def _never(path, owns):
    for bad in owns["never"]:
        if _inside(path, bad):
            return bad
    return None


def place(path, key, kind, owns, home, scratch):
    """``path`` (a file or folder the formula writes) lies where files of
    ``kind`` belong, on nothing of the system's and not in the qmail home."""
    for candidate in _candidates(path):
        via = "" if candidate == path else f" (through a symlink to {candidate})"
        bad = _never(candidate, owns)
        if bad:
            fail(key, f"{path!r}{via} is or lies in {bad}, which the formula does not own")
        if _inside(candidate, home):
            fail(key, f"{path!r}{via} lies in the qmail home {home}, whose files are "
                      "qmail's own (control/, queue/, ...), not this key's")
        if any(_inside(candidate, s) and candidate != s for s in scratch):
            continue
        if not _under_place(candidate, owns["places"][kind]):
            fail(key, f"{path!r}{via} is not where the formula keeps this file: it must be "
                      + _describe(owns["places"][kind]))


def files(settings, owns, scratch):
    lookup = settings["lookup"]
    home = lookup["home"]
    # The workdir first: a key that meets it is the one named.
    paths = {"qmail:build:workdir": (settings["build"]["workdir"], "cache")}
    for name, kind in FILE_KEYS.items():
        value = lookup
        for part in name.split(":"):
            value = value[part]
        if name == "sendmail_mailer_conf" and value == "":
            continue
        paths[f"qmail:lookup:{name}"] = (value, kind)
    used = {}
    for key, (path, kind) in paths.items():
        place(path, key, kind, owns, home, scratch)
        if path in used and {key, used[path]} != {"qmail:lookup:sendmail_journal",
                                                  "qmail:lookup:ledger"}:
            fail(key, f"{path!r} is {used[path]} already: one file, one owner")
        used.setdefault(path, key)
    journal, ledger = lookup["sendmail_journal"], lookup["ledger"]
    if journal == ledger:
        fail("qmail:lookup:ledger", f"{ledger!r} is qmail:lookup:sendmail_journal already: "
                                    "one file, one owner")
    for key, (path, _kind) in paths.items():
        for owner in FOLDER_KEYS:
            folder = paths[owner][0]
            if owner != key and (_inside(path, folder) or _inside(folder, path)):
                fail(key, f"{path!r} and {owner} ({folder}) hold one another: one place, "
                          "one owner")


# --------------------------------------------------------------------------
# Packages
# --------------------------------------------------------------------------
def mta_package(name, default, key, ledger):
    if name in ("", default) or _listed(ledger, "packages", name):
        return
    if package_known(name):
        fail(key, f"{name!r} is a real package (installed or known to the package manager): "
                  "the dummy package the formula builds must have a name of its own")


# --------------------------------------------------------------------------
# All of it
# --------------------------------------------------------------------------
def scratch_roots(value):
    """The minion option ``qmail_scratch_roots`` (tests, labs): folders under
    which any place is the formula's. Never the pillar's."""
    if not value:
        return []
    if isinstance(value, str):
        value = [value]
    roots = []
    for item in value:
        if not isinstance(item, str) or not item.startswith("/") or os.path.normpath(
                item) in ("/", "/etc", "/var", "/usr", "/var/lib", "/tmp"):
            raise SaltInvocationError(f"minion option qmail_scratch_roots: {item!r} is not "
                                      "a scratch folder of its own")
        roots.append(os.path.normpath(item))
    return roots


def check(settings, owns, default_lookup, scratch=()):
    """Every ownership rule over the checked ``settings`` (raises
    SaltInvocationError naming the pillar key)."""
    lookup = settings["lookup"]
    home = lookup["home"]
    ledger = _ledger(lookup["ledger"])
    files(settings, owns, list(scratch))
    for name in ("sendmail_paths", "sendmail_links"):
        for i, path in enumerate(lookup[name]):
            sendmail_place(path, f"qmail:lookup:{name}[{i}]", owns, home)
    sendmail_names(lookup, owns)
    nologin_shell(lookup["nologin_shell"], "qmail:lookup:nologin_shell", owns)
    accounts(lookup, owns, ledger)
    mta_package(lookup["sendmail_mta_package"], default_lookup.get("sendmail_mta_package", ""),
                "qmail:lookup:sendmail_mta_package", ledger)
