"""
The PEM file tlswrapper reads for qmail-smtpd (qmail:tls): the private key,
then the certificate and its chain, in one file readable by root alone.

.. code-block:: yaml

    qmail-service-tls-pem-qmail_tls-pem_managed:
      qmail_tls.pem_managed:
        - name: /etc/qmail-tls/smtpd.pem
        - host: mail.example.org
        - key_file: /etc/qmail-tls/key.pem
        - certificate_file: /etc/qmail-tls/cert.pem
        - user: root
        - group: root       # the SLS gives qmail:lookup:rootgroup (FreeBSD: wheel)

The new file takes the old one's name by rename, so a connection opens the
old file or the new one, never a part; tlswrapper reads it per connection,
so nothing needs a restart.
"""

import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_tls"


def __virtual__():
    if "qmail_tls.bundle" in __salt__:
        return __virtualname__
    return (False, "the qmail_tls execution module is not available (run saltutil.sync_all)")


def _current(name):
    try:
        with open(name, "rb") as handle:
            data = handle.read()
        st = os.lstat(name)
    except FileNotFoundError:
        return None, None
    return data, st


def pem_managed(name, user, group, host=None, key=None, certificate=None, key_file=None,
                certificate_file=None, mode="0600"):
    """
    Make sure ``name`` holds ``key`` then ``certificate`` (PEM text, or
    read from ``key_file``/``certificate_file``), owned by ``user``/``group``
    with ``mode``. The pair is checked first (the key is the certificate's,
    the certificate is for ``host``): a bad pair fails and leaves the file
    as it was. Changes never show the key.

    name
        The PEM file tlswrapper reads (``-f``).
    user, group
        Its owner: root and the OS's root group (``qmail:lookup:rootgroup``).
    host
        The name the certificate must be for (qmail:me).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = __opts__["test"]
    uid = __salt__["file.user_to_uid"](user)
    gid = __salt__["file.group_to_gid"](group)
    if uid == "" or gid == "":
        ret.update(result=False, comment=f"no user {user!r} or group {group!r}")
        return ret
    wanted_mode = int(str(mode), 8)
    files = [f for f in (key_file, certificate_file) if f]
    if test and any(not os.path.exists(f) for f in files):
        # First run in test mode: x509_v2 would make them first.
        ret.update(result=None, changes={"pem": name},
                   comment=f"{name} would be assembled from {', '.join(files)} once made")
        return ret
    try:
        wanted = __salt__["qmail_tls.bundle"](key, certificate, key_file, certificate_file,
                                              host).encode("ascii")
    except (SaltInvocationError, CommandExecutionError) as exc:
        ret.update(result=False, comment=f"{name} left as it was: {exc}")
        return ret
    data, st = _current(name)
    if data is None:
        ret["changes"]["pem"] = "created"
    else:
        if os.path.islink(name) or not os.path.isfile(name):
            ret["changes"]["pem"] = "replaced (it was not a plain file)"
        elif data != wanted:
            ret["changes"]["pem"] = "new key or certificate"
        if st.st_uid != uid or st.st_gid != gid:
            ret["changes"]["owner"] = {"old": f"{st.st_uid}:{st.st_gid}", "new": f"{uid}:{gid}"}
        if st.st_mode & 0o7777 != wanted_mode:
            ret["changes"]["mode"] = {"old": oct(st.st_mode & 0o7777)[2:].zfill(4),
                                      "new": oct(wanted_mode)[2:].zfill(4)}
    if not ret["changes"]:
        ret["comment"] = f"{name} holds the key and certificate"
        return ret
    if test:
        ret.update(result=None, comment=f"{name} would be written")
        return ret
    try:
        # Written whole and renamed, mode and owner set before the rename:
        # the key is never readable by others, not even for a moment.
        __utils__["qmail_files.atomic_write"](name, wanted, mode=wanted_mode, uid=uid, gid=gid)
    except OSError as exc:
        ret.update(result=False, changes={}, comment=f"{name}: {exc}")
        return ret
    log.info("qmail_tls: wrote %s", name)
    ret["comment"] = f"{name} written"
    return ret
