"""
Manage qmail's control files (qmail-control(5)).

.. code-block:: yaml

    qmail-control-file-managed-rcpthosts:
      qmail_control.managed:
        - name: rcpthosts
        - contents:
          - cla.kobe-u.ac.jp
          - .cla.kobe-u.ac.jp

    qmail-control-file-absent-smtproutes:
      qmail_control.absent:
        - name: smtproutes

    qmail-control-files:
      qmail_control.files_managed:
        - files:
            me: ccs.cla.kobe-u.ac.jp
            concurrencyremote: 40
            smtproutes: null        # removed

Every value is checked before anything is written; writes are atomic. When a
change needs qmail-send to be told, ``changes`` carries ``reload``: ``hup``,
``restart`` or ``newmrh`` (see ``qmail_control.reload_action``), for the
reader. Which reaction a file calls for is written in the SLS (the
``qmail_service`` reaction states watch the files of their class); the
execution module keeps this run's changes (``qmail_control.changed``) for
the reason those states give.
"""

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_control"


def __virtual__():
    if "qmail_control.write" in __salt__:
        return __virtualname__
    return (False, "the qmail_control execution module is not available")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _fail(ret, exc):
    ret.update(result=False, changes={}, comment=str(exc))
    return ret


def _applied(name, functions, args, same, would, done):
    """Call ``qmail_control.<check>`` under test=True, ``<act>`` otherwise
    (``functions`` = (check, act)), and say in the return what it changed."""
    ret = _ret(name)
    test = bool(__opts__["test"])
    try:
        changes = __salt__["qmail_control." + functions[0 if test else 1]](*args)
    except (SaltInvocationError, CommandExecutionError) as exc:
        return _fail(ret, exc)
    ret["changes"] = changes
    if not changes:
        ret["comment"] = same
    elif test:
        ret.update(result=None, comment=would)
    else:
        ret["comment"] = done
    return ret


def managed(name, contents, home=None):
    """
    Make control file ``name`` hold ``contents``: a string or number for
    one-line files, a list (or one string) for list files. The file is
    written with one entry per line, duplicates dropped, a final newline,
    mode 0644 and owner root.

    name
        The control file's own name (``me``, ``rcpthosts``, ...).
    contents
        The value.
    home
        The qmail home (default: the formula's ``qmail:lookup:home``).
    """
    return _applied(name, ("check_changes", "write"), (name, contents, home),
                    f"Control file {name} is already in the correct state",
                    f"Control file {name} would be updated", f"Control file {name} updated")


def absent(name, home=None):
    """
    Make sure control file ``name`` does not exist, so that qmail uses its
    default. (Mind ``rcpthosts``: without it qmail-smtpd relays for anyone;
    the formula's run script refuses to start qmail-smtpd then.)

    name
        The control file's own name.
    home
        The qmail home (default: the formula's ``qmail:lookup:home``).
    """
    return _applied(name, ("check_remove", "remove"), (name, home),
                    f"Control file {name} is already absent",
                    f"Control file {name} would be removed", f"Control file {name} removed")


def files_managed(name, files, home=None):  # pylint: disable=redefined-outer-name
    """
    Apply a whole set of control files at once: ``files`` maps each file name
    to its contents, or to None to remove it. Every value is checked before
    the first file is touched; ``changes`` is keyed by file name, and
    ``reload`` lists what qmail must be told (``hup``, ``restart``,
    ``newmrh``).

    name
        A label for the set.
    files
        Control file name -> contents or None.
    home
        The qmail home (default: the formula's ``qmail:lookup:home``).
    """
    ret = _ret(name)
    if not isinstance(files, dict):
        return _fail(ret, f"files: expected a mapping of control files, got {files!r}")
    check = __salt__["qmail_control.normalize"]
    try:
        # Check everything before the first write.
        for file, value in files.items():
            if value is not None:
                check(file, value, f"files:{file}")
        for file, value in files.items():
            if value is None:
                act = "check_remove" if __opts__["test"] else "remove"
                change = __salt__[f"qmail_control.{act}"](file, home)
            else:
                act = "check_changes" if __opts__["test"] else "write"
                change = __salt__[f"qmail_control.{act}"](file, value, home)
            if change:
                ret["changes"][file] = change
    except (SaltInvocationError, CommandExecutionError) as exc:
        # Changes already made stay reported: a partial write is still news.
        ret.update(result=False, comment=str(exc))
        return ret
    reloads = sorted({c["reload"] for c in ret["changes"].values() if "reload" in c})
    if reloads:
        ret["changes"]["reload"] = reloads
    changed = sorted(file for file in ret["changes"] if file != "reload")
    if not changed:
        ret["comment"] = f"All {len(files)} control files are in the correct state"
    elif __opts__["test"]:
        ret.update(result=None, comment="Would update: " + ", ".join(changed))
    else:
        ret["comment"] = "Updated: " + ", ".join(changed)
    return ret
