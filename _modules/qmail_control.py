"""
Read, check and write qmail's control files (qmail-control(5)).

What qmail knows of each of its 28 control files (syntax, default when
absent, the program that reads it, what it must be told after a change) is
the catalogue in ``_utils/qmail_control_files.py``; ``normalize``,
``reload_action`` and ``derive`` here are its command-line face.
``qmail_settings.merge`` derives a host's control files from the same
catalogue while the SLS files render; the ``qmail_control`` states then call
``check_changes``/``write`` and ``check_remove``/``remove`` here, and
``changed`` tells the service's reaction states which changes they react
to. Writes are atomic (temporary file, fsync, rename) so qmail never reads
half a file.

Every function that reads or writes takes ``home``; left out (a call from
the command line), it is the formula's ``qmail:lookup:home``
(``qmail_settings.get``), and only then is the pillar merged and checked.
"""

import difflib
import functools
import logging
import os
import re
import stat

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_control"
__func_alias__ = {"list_": "list"}


# This state run's record of the control files that changed (or would, under
# test=True) in a way qmail must be told of: {path: reload action}.
_TOLD = "qmail_control.changed"


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _files(name):
    """A function of ``_utils/qmail_control_files.py`` (the catalogue)."""
    return __utils__[f"qmail_control_files.{name}"]


def _spec(name, key="name"):
    return _files("spec")(name, key)


def _home(home=None):
    if home:
        return _v("own_dir")(str(home), "home")
    # Not given (a call from the command line): the home the formula's
    # states use, from the one owner of the settings and their defaults.
    return _v("own_dir")(__salt__["qmail_settings.get"]("lookup:home"), "qmail:lookup:home")


def _control_dir(home=None):
    return os.path.join(_home(home), "control")


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
    return _files("names")()


def normalize(name, value, key=None):
    """
    Check ``value`` for control file ``name`` and return the file's content:
    one entry per line, a trailing newline, duplicates dropped (list files),
    comments kept where qmail allows them. Raises SaltInvocationError naming
    ``key`` (default: the file's name) on bad input.

    CLI Example::

        salt '*' qmail_control.normalize rcpthosts '[example.com, .example.com]'
    """
    return _files("normalize")(name, value, __utils__["qmail_validate.plain"], key)


def reload_action(name):
    """
    Say what qmail needs after control file ``name`` changed: ``hup``
    (qmail-send re-reads it on SIGHUP), ``restart`` (qmail-send reads it only
    at start), ``newmrh`` (rebuild morercpthosts.cdb) or None (read per
    message by qmail-smtpd, qmail-remote or qmail-inject).

    CLI Example::

        salt '*' qmail_control.reload_action locals
    """
    return _files("reload_action")(name)


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
    known = set(_files("names")())
    return sorted(name for name in names if name in known)


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
            present[name] = _parse(_spec(name), data)
    me = present.get("me") or None
    result = {}
    for name in _files("names")():
        if name in present:
            result[name] = {"value": present[name], "default": False}
        else:
            result[name] = {"value": _files("default")(name, me), "default": True}
    result["rcpthosts"]["open_relay"] = "rcpthosts" not in present
    return result


# --------------------------------------------------------------------------
# Roles (the seed's §4 and §5): _utils/qmail_control_files.py
# --------------------------------------------------------------------------
def derive(role, me, spool=None, overrides=None, key="qmail"):
    """
    The control files of a host of ``role`` named ``me`` with ``overrides``
    applied: file name -> normalised value, None for a file to remove (the
    seed's rules are ``_utils/qmail_control_files.derive``'s docstring).

    CLI Example::

        salt '*' qmail_control.derive client hostname.cla.kobe-u.ac.jp spool=ccs.cla.kobe-u.ac.jp
    """
    return _files("derive")(role, me, __utils__["qmail_validate.plain"], spool, overrides,
                             key)
