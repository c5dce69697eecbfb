"""
The files of authenticated submission and of a smarthost with credentials
(``qmail:submission``, ``qmail:smarthost``; text and schema in
``_utils/qmail_submission.py``):

- the passwd(5) file ``cvm-pwfile`` reads for qmail-smtpsd's AUTH, the
  qmaild account's alone (0400), replaced by rename: the next login reads
  the new one, no restart;
- ``control/authsenders``, the patched qmail-remote's credentials, the
  qmailr account's alone (0400), with the formula's header.

What these functions return names users and files, never a hash or a
password.
"""

import functools
import os
import pwd

from salt.exceptions import SaltInvocationError

__virtualname__ = "qmail_submission"
MODE = 0o400
# authsenders' first line (qmail skips control lines that start with '#'):
# the proof that the file is the formula's.
AUTHSENDERS_HEADER = ("# Managed by Salt (qmail:smarthost); readable by qmailr only. "
                      "Local changes are overwritten.\n")


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def checked_users(users):
    """
    ``users`` (name -> crypt hash) checked as ``qmail:submission:users``
    is: yescrypt or sha512-crypt hashes only, names without ``:`` or line
    breaks. Errors name the user, never quote the value.

    CLI Example::

        salt '*' qmail_submission.checked_users \
        users='{alice: "$y$j9T$F5Jx5fExrKuJdvj4.HRbW.$iiO9F69OBDvIchQQ0VYIflVLmgIVdBrdJ4TsAJCyBpC"}'
    """
    # Resolved here: a utils function cannot reach the loader itself.
    return __utils__["qmail_submission.check_users"](users, "users",
                                                     {"mapping": _v("mapping")}.__getitem__)


def _account(name):
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SaltInvocationError(f"account: no user {name!r} on this host") from None
    return entry.pw_uid, entry.pw_gid


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _owner_fixes(path, uid, gid):
    """What of ``path``'s owner and mode is not what the file needs."""
    st = os.lstat(path)
    fixes = []
    if (st.st_uid, st.st_gid) != (uid, gid):
        fixes.append("owner")
    if st.st_mode & 0o7777 != MODE:
        fixes.append("mode")
    return fixes


def passwd_changes(path, users, account="qmaild", home=None):
    """
    What writing ``users`` (name -> crypt hash) to the passwd file ``path``
    for ``account`` would change: ``{}`` when nothing, else some of
    ``file`` (created), ``added``/``removed``/``password changed`` (user
    names), ``ids`` (the account's uid/gid moved), ``fixed`` (owner, mode).

    CLI Example::

        salt '*' qmail_submission.passwd_changes /var/qmail/supervise/qmail-smtpsd/passwd \\
        users='{alice: "$y$j9T$F5Jx5fExrKuJdvj4.HRbW.$iiO9F69OBDvIchQQ0VYIflVLmgIVdBrdJ4TsAJCyBpC"}'
    """
    users = checked_users(users)
    text = _read(path)
    if text is None:  # (the account may not exist yet in a test=True run)
        return {"file": "created", "added": sorted(users)}
    uid, gid = _account(account)
    have = __utils__["qmail_submission.passwd_users"](text)
    changes = {}
    added = sorted(set(users) - set(have))
    removed = sorted(set(have) - set(users))
    changed = sorted(n for n in set(users) & set(have) if have[n][0] != users[n])
    for name, value in (("added", added), ("removed", removed),
                        ("password changed", changed)):
        if value:
            changes[name] = value
    if any(have[n][1:] != (str(uid), str(gid)) for n in set(users) & set(have)):
        changes["ids"] = f"{account}'s uid {uid}, gid {gid}"
    if text != _passwd(users, uid, gid, path, home) and not changes:
        changes["rewritten"] = "normalised"
    fixes = _owner_fixes(path, uid, gid)
    if fixes:
        changes["fixed"] = fixes
    return changes


def _passwd(users, uid, gid, path, home):
    return __utils__["qmail_submission.passwd_text"](
        users, uid, gid, home or os.path.dirname(path))


def write_passwd(path, users, account="qmaild", home=None):
    """
    Write the passwd file ``path`` for ``account`` (its uid and gid in every
    entry: cvm-checkpassword switches to them) with ``users`` (name -> crypt
    hash, checked): owner ``account``, mode 0400, replaced by rename.

    CLI Example::

        salt '*' qmail_submission.write_passwd /var/qmail/supervise/qmail-smtpsd/passwd \\
        users='{alice: "$y$j9T$F5Jx5fExrKuJdvj4.HRbW.$iiO9F69OBDvIchQQ0VYIflVLmgIVdBrdJ4TsAJCyBpC"}'
    """
    users = checked_users(users)
    uid, gid = _account(account)
    data = _passwd(users, uid, gid, path, home).encode()
    __utils__["qmail_files.atomic_write"](path, data, mode=MODE, uid=uid, gid=gid)
    return sorted(users)


def _smarthost(host, port, user, password):
    """The smarthost's values; each one not given comes from the settings
    (the password always can: it never passes through an SLS file)."""
    given = {"host": host, "port": port, "user": user, "password": password}
    if any(v is None for v in given.values()):
        settings = __salt__["qmail_settings.get"]("smarthost")
        given = {k: settings[k] if v is None else v for k, v in given.items()}
    return given


def authsenders_changes(path, account="qmailr", host=None, port=None, user=None,
                        password=None):
    """
    What making ``path`` (control/authsenders) hold the smarthost's
    credentials would change: ``{}`` when nothing, else ``file`` (created),
    ``credentials`` ("changed", never the values), ``fixed`` (owner, mode).
    With an empty host: ``removed`` when the formula's file is there.

    CLI Example::

        salt '*' qmail_submission.authsenders_changes /var/qmail/control/authsenders
    """
    sh = _smarthost(host, port, user, password)
    text = _read(path)
    if not sh["host"]:
        if text is not None and text.startswith(AUTHSENDERS_HEADER):
            return {"file": "removed"}
        return {}
    if text is None:
        return {"file": "created", "credentials": "set"}
    changes = {}
    if text != _authsenders(sh):
        changes["credentials"] = "changed"
    uid, gid = _account(account)
    fixes = _owner_fixes(path, uid, gid)
    if fixes:
        changes["fixed"] = fixes
    return changes


def _authsenders(sh):
    return AUTHSENDERS_HEADER + __utils__["qmail_submission.authsenders_text"](
        sh["host"], sh["port"], sh["user"], sh["password"])


def write_authsenders(path, account="qmailr", host=None, port=None, user=None,
                      password=None):
    """
    Write control/authsenders (``path``) for the smarthost, owner
    ``account``, mode 0400, replaced by rename (qmail-remote reads it per
    delivery: no restart); with an empty host, remove the formula's file.
    Returns what it did, without the credentials.

    CLI Example::

        salt '*' qmail_submission.write_authsenders /var/qmail/control/authsenders
    """
    sh = _smarthost(host, port, user, password)
    if not sh["host"]:
        text = _read(path)
        if text is not None and text.startswith(AUTHSENDERS_HEADER):
            os.unlink(path)
            __utils__["qmail_files.fsync_dir"](os.path.dirname(path))
            return "removed"
        return "absent"
    uid, gid = _account(account)
    __utils__["qmail_files.atomic_write"](path, _authsenders(sh).encode(), mode=MODE,
                                          uid=uid, gid=gid)
    return "written"
