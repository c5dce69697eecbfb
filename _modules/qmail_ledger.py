"""
The formula's ledger of what it created (issue 19; ``_utils/qmail_ledger.py``
keeps the file): the clean states remove only what it lists.

CLI Example::

    salt '*' qmail_ledger.entries
    salt '*' qmail_ledger.lists dirs /etc/qmail-tls
"""

import fnmatch
import functools
import os

__virtualname__ = "qmail_ledger"


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _ledger(ledger):
    if ledger is None:
        ledger = __salt__["qmail_settings.get"]("lookup:ledger")
    return _v("path")(ledger, "ledger")


def entries(ledger=None):
    """Every section of the ledger (``dirs``, ``files``, ``users``,
    ``groups``, ``packages``).

    CLI Example::

        salt '*' qmail_ledger.entries
    """
    return __utils__["qmail_ledger.read"](_ledger(ledger))


def lists(kind, name, ledger=None):
    """True when the ledger lists ``name`` under ``kind``: the formula
    created it.

    CLI Example::

        salt '*' qmail_ledger.lists users qmaild
    """
    return __utils__["qmail_ledger.lists"](_ledger(ledger), kind, name)


def record(kind, name, ledger=None):
    """List ``name`` under ``kind``; True when it was not listed yet.

    CLI Example::

        salt '*' qmail_ledger.record dirs /etc/qmail-tls
    """
    return __utils__["qmail_ledger.record"](_ledger(ledger), kind, name,
                                            __utils__["qmail_files.atomic_write"])


def forget(kind, name, ledger=None):
    """Drop ``name`` from ``kind``; True when it was listed.

    CLI Example::

        salt '*' qmail_ledger.forget dirs /etc/qmail-tls
    """
    return __utils__["qmail_ledger.forget"](_ledger(ledger), kind, name,
                                            __utils__["qmail_files.atomic_write"])


def proves(kind, name, only=None, marker=None, maintainer=None, source=None, ledger=None):
    """
    Whether the host shows that ``name`` is (or is about to be) the
    formula's, so that it may be recorded:

    - ``dirs``: absent, or holding only entries whose names match ``only``;
    - ``files``: absent, or holding the text ``marker`` (the formula's header),
      or, with ``source``, a file compiled from ``source`` (a binary such as
      tcprules' ``.cdb`` carries no header) while the ledger lists ``source``;
    - ``users``/``groups``: present (the render-time ownership check has
      refused any existing account not of qmail's shape);
    - ``packages``: installed with ``Maintainer`` ``maintainer`` (dpkg);
      without ``maintainer``, not installed yet (recorded before the
      formula's ``pkg.installed``: it installs the package).
    - ``displaced``: installed now (recorded before the formula's
      ``pkg.installed`` of a package that conflicts with it: apt removes it).

    CLI Example::

        salt '*' qmail_ledger.proves dirs /etc/qmail-tls only='[key.pem, cert.pem]'
    """
    if kind == "dirs":
        if not os.path.lexists(name):
            return True
        if os.path.islink(name) or not os.path.isdir(name):
            return False
        return all(any(fnmatch.fnmatchcase(entry, p) for p in (only or []))
                   for entry in os.listdir(name))
    if kind == "files":
        if not os.path.lexists(name):
            return True
        if os.path.islink(name) or not os.path.isfile(name):
            return False
        if source:
            return lists("files", source, ledger=ledger)
        if not marker:
            return False
        with open(name, "rb") as handle:
            return marker.encode() in handle.read(4096)
    if kind == "users":
        return bool(__salt__["user.info"](name))
    if kind == "groups":
        return bool(__salt__["group.info"](name))
    if kind == "packages":
        installed, who = _dpkg(name)
        if not maintainer:
            return not installed
        return installed and who == maintainer
    if kind == "displaced":
        return _dpkg(name)[0]
    return False


def _dpkg(name):
    """(installed, maintainer) of package ``name`` as dpkg knows it."""
    res = __salt__["cmd.run_all"](
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Maintainer}", name],
        python_shell=False, ignore_retcode=True, output_loglevel="quiet")
    status, _, who = res["stdout"].partition("\t")
    return res["retcode"] == 0 and status.startswith("ii"), who.strip()


def still_made(kind, name, only=None, marker=None, maintainer=None):
    """
    True when ``name``, listed in the ledger and on the host, still is what
    the formula made: a folder holding only ``only`` (when given), a file
    holding ``marker`` (when given), the package of ``maintainer`` (when
    given), an account whose shell refuses logins.

    CLI Example::

        salt '*' qmail_ledger.still_made users qmaild
    """
    if kind == "dirs" and only is not None:
        return proves(kind, name, only=only)
    if kind == "files" and marker:
        return proves(kind, name, marker=marker)
    if kind == "packages" and maintainer:
        return proves(kind, name, maintainer=maintainer)
    if kind == "users":
        shell = (__salt__["user.info"](name) or {}).get("shell") or ""
        return shell == "/dev/null" or os.path.basename(shell) in ("nologin", "false")
    return True


def remove(kind, name):
    """Remove ``name`` of ``kind`` from the host (no ledger check: the state
    ``qmail_ledger.removed`` checks). True when something was removed.

    CLI Example::

        salt '*' qmail_ledger.remove dirs /var/cache/qmail-build
    """
    if kind == "dirs":
        if os.path.islink(name) or os.path.isfile(name):
            os.unlink(name)
            return True
        if os.path.isdir(name):
            __salt__["file.remove"](name)
            return True
        return False
    if kind == "files":
        if os.path.lexists(name):
            os.unlink(name)
            return True
        return False
    if kind == "users":
        if not __salt__["user.info"](name):
            return False
        return bool(__salt__["user.delete"](name))
    if kind == "groups":
        if not __salt__["group.info"](name):
            return False
        return bool(__salt__["group.delete"](name))
    if kind == "packages":
        if not __salt__["pkg.version"](name):
            return False
        __salt__["pkg.purge"](name)
        return True
    return False


def put_back(name):
    """Install package ``name`` again (a ``displaced`` entry: the formula's
    package had made apt remove it). True when it is installed afterwards.

    CLI Example::

        salt '*' qmail_ledger.put_back ucspi-tcp
    """
    __salt__["pkg.install"](name)
    return bool(__salt__["pkg.version"](name))


def present(kind, name):
    """True when ``name`` of ``kind`` is on the host.

    CLI Example::

        salt '*' qmail_ledger.present groups nofiles
    """
    if kind in ("dirs", "files"):
        return os.path.lexists(name)
    if kind == "users":
        return bool(__salt__["user.info"](name))
    if kind == "groups":
        return bool(__salt__["group.info"](name))
    if kind in ("packages", "displaced"):
        return bool(__salt__["pkg.version"](name))
    return False
