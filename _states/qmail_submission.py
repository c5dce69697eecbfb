"""
States for authenticated submission and a smarthost with credentials
(``_modules/qmail_submission.py`` computes and writes).

.. code-block:: yaml

    qmail-submission-passwd:
      qmail_submission.passwd_managed:
        - name: /var/qmail/supervise/qmail-smtpsd/passwd
        - users: {alice: "$y$j9T$..."}
        - account: qmaild

    qmail-smarthost-authsenders:
      qmail_submission.authsenders_managed:
        - name: /var/qmail/control/authsenders
        - account: qmailr

``changes`` and comments name users and say "credentials changed"; they
never hold a hash or a password, in test mode neither.
"""

__virtualname__ = "qmail_submission"


def __virtual__():
    if "qmail_submission.passwd_changes" in __salt__:
        return __virtualname__
    return (False, "the qmail_submission execution module is not loaded")


def _managed(name, changes, write, already, would, done):
    """The shape both states share: ``changes()`` (the diff, no secrets),
    nothing to do -> ``already``; test mode -> ``would``; else ``write()``
    and ``done(its result)``. An error of either call fails the state."""
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        found = changes()
    except Exception as exc:  # pylint: disable=broad-except
        ret.update(result=False, comment=str(exc))
        return ret
    if not found:
        ret["comment"] = already
        return ret
    ret["changes"] = found
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = would
        return ret
    try:
        written = write()
    except Exception as exc:  # pylint: disable=broad-except
        ret.update(result=False, changes={}, comment=f"{name}: {exc}")
        return ret
    ret["comment"] = done(written)
    return ret


def passwd_managed(name, users, account="qmaild", home=None):
    """
    The passwd file ``name`` that cvm-pwfile reads holds ``users`` (name ->
    crypt hash), with ``account``'s uid and gid, owned by ``account``, mode
    0400. qmail-smtpsd reads it per login: a change needs no restart.
    """
    try:
        users = __salt__["qmail_submission.checked_users"](users)
    except Exception as exc:  # pylint: disable=broad-except
        return {"name": name, "result": False, "changes": {}, "comment": str(exc)}
    return _managed(
        name,
        lambda: __salt__["qmail_submission.passwd_changes"](name, users, account, home),
        lambda: __salt__["qmail_submission.write_passwd"](name, users, account, home),
        already=f"{name} holds the {len(users)} submission user(s) already",
        would=f"{name} would be written ({len(users)} user(s))",
        done=lambda _: f"{name} written ({len(users)} user(s)); the next login reads it")


def authsenders_managed(name, account="qmailr", host=None, port=None, user=None):
    """
    control/authsenders (``name``) sends every remote message to the
    smarthost ``host:port`` as ``user``; the password comes from the
    settings (``qmail_settings.get smarthost:password``), never from the SLS
    file. Owner ``account``, mode 0400. With an empty host, the formula's
    file is removed (another one is left).
    """
    return _managed(
        name,
        lambda: __salt__["qmail_submission.authsenders_changes"](name, account, host, port,
                                                                 user),
        lambda: __salt__["qmail_submission.write_authsenders"](name, account, host, port, user),
        already=(f"{name} holds the smarthost's credentials already" if host
                 else f"no smarthost: {name} is not the formula's or absent"),
        would=f"{name} would be {'removed' if not host else 'written'}",
        done=lambda how: f"{name} {how}; qmail-remote reads it per delivery")
