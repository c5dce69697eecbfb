"""
Debian's dummy ``mail-transport-agent`` package for qmail (qmail.sendmail):
qmail is installed from source, outside dpkg, so a package that needs an MTA
(bsd-mailx, cron) would make apt pull in exim4. A tiny package that only
``Provides: mail-transport-agent`` stops that.

The .deb is built with ``dpkg-deb`` (no equivs needed) from a control file
the state writes; installing and purging it is Salt's own ``pkg.installed``
(``sources``) and ``pkg.purged``.
"""

import functools
import logging
import os
import re

import salt.utils.path
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_mta_package"

CAPABILITY = "mail-transport-agent"
# A Debian package name (Debian Policy §5.6.1).
_NAME_RE = r"[a-z0-9][a-z0-9+.-]+"


def __virtual__():
    if salt.utils.path.which("dpkg-deb") and salt.utils.path.which("dpkg-query"):
        return __virtualname__
    return (False, "qmail_mta_package needs dpkg-deb and dpkg-query (Debian)")


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _checked_control(control):
    """Control file lines: printable ASCII, one line each, Package first."""
    control = _v("each")(control, "control", "string")
    if not control or not re.fullmatch(r"Package: " + _NAME_RE, control[0]):
        _v("fail")("control[0]", "must be 'Package: <name>'")
    return ("\n".join(control) + "\n").encode("ascii")


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _provides(field):
    """The names in a ``Provides`` field, versions dropped."""
    return {item.split("(")[0].strip() for item in field.split(",") if item.strip()}


def providers(capability=CAPABILITY):
    """
    The installed packages that provide ``capability`` (default
    ``mail-transport-agent``), read from dpkg's database.

    CLI Example::

        salt '*' qmail_mta_package.providers
    """
    _v("deb_name")(capability, "capability")
    res = __salt__["cmd.run_all"](
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Provides}\n"],
        python_shell=False, ignore_retcode=True, output_loglevel="quiet")
    if res["retcode"] != 0:
        raise CommandExecutionError(f"dpkg-query failed: {res['stderr'].strip()}")
    found = []
    for line in res["stdout"].splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].startswith("ii") and (
                capability in _provides(parts[2])):
            found.append(parts[1])
    return sorted(found)


def provided(capability=CAPABILITY):
    """
    True when an installed package provides ``capability`` (default
    ``mail-transport-agent``): qmail.sendmail then leaves its dummy package
    uninstalled (sendmail-bin, for one, conflicts with any other provider).

    CLI Example::

        salt '*' qmail_mta_package.provided
    """
    return bool(providers(capability))


def build(root, deb, control, test=False):
    """
    Write the control file ``<root>/DEBIAN/control`` (``control``: its
    lines) and build ``deb`` from ``root`` with ``dpkg-deb``, when the .deb
    is missing, older than its control file, or the control file changes.
    Returns the changes (``{}`` when the .deb is up to date); ``test=True``
    predicts them and runs nothing.

    CLI Example::

        salt '*' qmail_mta_package.build /var/lib/qmail-formula/qmail-mta \
            /var/lib/qmail-formula/qmail-mta.deb \
            '["Package: qmail-mta", "Version: 1.0", "Architecture: all"]'
    """
    root = _v("own_dir")(root, "root")
    deb = _v("path")(deb, "deb")
    _v("own_dir")(os.path.dirname(deb), "deb")
    data = _checked_control(control)
    control_path = os.path.join(root, "DEBIAN", "control")
    if os.path.isdir(control_path) or os.path.isdir(deb):
        raise CommandExecutionError(f"{control_path} or {deb} is a folder")
    changes = {}
    if _read(control_path) != data:
        changes["control"] = control_path
    deb_time = _mtime(deb)
    if changes or deb_time is None or deb_time < (_mtime(control_path) or 0):
        changes["deb"] = deb
    if test or not changes:
        return changes
    if "control" in changes:
        os.makedirs(os.path.join(root, "DEBIAN"), mode=0o755, exist_ok=True)
        # dpkg-deb refuses a DEBIAN folder with group or other write bits.
        os.chmod(os.path.join(root, "DEBIAN"), 0o755)
        __utils__["qmail_files.atomic_write"](control_path, data, mode=0o644)
    # Built under a temporary name and renamed: a killed run leaves no
    # half-written .deb that would look newer than its control file.
    with __utils__["qmail_files.replacing"](deb, mode=0o644) as tmp:
        res = __salt__["cmd.run_all"](
            ["dpkg-deb", "--root-owner-group", "--build", root, tmp],
            python_shell=False, ignore_retcode=True)
        if res["retcode"] != 0:
            raise CommandExecutionError(
                f"dpkg-deb --build {root} failed: {(res['stderr'] or res['stdout']).strip()}")
    log.info("built %s from %s", deb, root)
    return changes
