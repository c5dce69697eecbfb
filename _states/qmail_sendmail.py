"""
Neutralise the OS's sendmail and put qmail's front end in its place (the
seed's §2), reversibly: each state saves what it changes in a journal on the
host first, and ``restored`` undoes everything from that journal.

.. code-block:: yaml

    qmail-sendmail-processes-qmail_sendmail-stopped:
      qmail_sendmail.stopped:
        - services: [sendmail]
        - paths: [/usr/sbin/sendmail, /usr/lib/sendmail]

    qmail-sendmail-boot-qmail_sendmail-boot_disabled:
      qmail_sendmail.boot_disabled:
        - method: rcconf
        - path: /etc/rc.conf

    qmail-sendmail-binary-qmail_sendmail-neutralised-/usr/sbin/sendmail:
      qmail_sendmail.neutralised:
        - name: /usr/sbin/sendmail
        - frontend: /var/qmail/bin/sendmail

    qmail-sendmail-link-qmail_sendmail-frontend_linked-/usr/lib/sendmail:
      qmail_sendmail.frontend_linked:
        - name: /usr/lib/sendmail
        - frontend: /var/qmail/bin/sendmail

    qmail-sendmail-clean-qmail_sendmail-restored:
      qmail_sendmail.restored:
        - name: /var/lib/qmail-formula/sendmail.json

Every state takes ``journal`` (default: the formula's ``lookup:sendmail_journal``).
``test=True`` returns the predicted changes (old/new) and touches nothing.
"""

import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_sendmail"

def __virtual__():
    if "qmail_sendmail.neutralise" in __salt__:
        return __virtualname__
    return (False, "the qmail_sendmail execution module is not available")


def _apply(name, function, done, would, did, *args, **kwargs):
    """Call execution function ``function`` (predicting in test mode) and
    turn its changes into a state return."""
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__["test"])
    try:
        changes = __salt__[f"qmail_sendmail.{function}"](*args, test=test, **kwargs)
    except (CommandExecutionError, SaltInvocationError, OSError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret["changes"] = changes
    if not changes:
        ret["comment"] = done
    elif test:
        ret.update(result=None, comment=would)
    else:
        ret["comment"] = did
    return ret


def stopped(name, services, paths, ports=None, frontend=None, journal=None, also=()):
    """
    No sendmail process runs: ``services`` are stopped through the service
    manager, then whatever still runs one of the sendmail binaries behind
    ``paths`` (or listens on ``ports`` under a ``sendmail*`` name) gets
    SIGTERM, then SIGKILL. Processes are checked, not the init script's
    status (Debian's answers 0 even when stopped).

    name
        A label.
    services
        Service names (``sendmail``, ``sm-client``).
    paths
        Where the OS keeps sendmail.
    ports
        The ports sendmail listens on (default: ``lookup:sendmail_ports``).
    frontend
        qmail's front end, which is not sendmail.
    also
        qmail's other front ends (qmail:filter's wrapper, or qmail's own
        sendmail while the wrapper is the front end): not sendmail either.
    """
    return _apply(name, "stop", "No sendmail process runs", "sendmail would be stopped",
                  "sendmail stopped", services, paths, ports=ports, journal=journal,
                  frontend=frontend, also=also)


def boot_disabled(name, method, services=(), path=None, journal=None):
    """
    sendmail does not start at boot. ``method``: ``rcconf`` (FreeBSD
    /etc/rc.conf), ``sysconfig`` (old RedHat /etc/sysconfig/sendmail),
    ``irix`` (/etc/config/sendmail), ``chkconfig``, ``systemd`` or ``sysv``
    (``services`` through Salt's service module).

    name
        A label.
    path
        The file the method edits.
    """
    return _apply(name, "boot_disable", "sendmail does not start at boot",
                  f"sendmail's start at boot would be disabled ({method})",
                  f"sendmail's start at boot disabled ({method})",
                  method, services=services, path=path, journal=journal)


def neutralised(name, frontend, sendmail_paths=(), journal=None, also=()):
    """
    The sendmail binary behind ``name`` has mode 0 and sits at
    ``<real file>.bak`` (seed: ``chmod 0``, ``mv sendmail sendmail.bak``).
    A path that leads to qmail's ``frontend`` is left alone; an existing
    ``.bak`` is never overwritten.

    sendmail_paths
        All the paths handled, in order (for exact predictions in test mode
        when several lead to the same file).
    also
        qmail's other front ends: a path leading to one is left alone too.
    """
    return _apply(name, "neutralise", f"No sendmail binary behind {name}",
                  f"The sendmail binary behind {name} would be kept as .bak, mode 0",
                  f"The sendmail binary behind {name} is kept as .bak, mode 0",
                  name, frontend, journal=journal, sendmail_paths=sendmail_paths,
                  also=also)


def frontend_linked(name, frontend, sendmail_paths=(), links=(), alternative_links=(),
                    journal=None):
    """
    ``name`` is a symlink to qmail's front end ``frontend`` (or leads there
    through alternatives). While qmail is not installed yet (no
    ``frontend``), nothing is linked and the state says so: sendmail is
    neutralised in any case, and the next run after the build links.

    sendmail_paths
        The paths ``neutralised`` handles: in test mode their files count as
        moved to .bak already.
    links
        All the paths linked, in order: in test mode those before ``name``
        count as linked already.
    alternative_links
        Links that an ``alternative`` state points to qmail: in test mode
        they count as done.
    """
    if not os.path.exists(frontend):
        return {"name": name, "result": True, "changes": {},
                "comment": f"qmail's front end {frontend} is not installed yet; "
                           f"{name} will be linked once it is"}
    return _apply(name, "link_frontend", f"{name} leads to {frontend}",
                  f"{name} would be linked to {frontend}", f"{name} linked to {frontend}",
                  name, frontend, journal=journal, sendmail_paths=sendmail_paths,
                  links=links, alternative_links=alternative_links)


def alternative_chosen(name, link, frontend, priority, slaves=(), journal=None):
    """
    qmail's front end is registered in alternatives group ``name`` (RedHat's
    ``mta``) and chosen. ``slaves``: ``{name, link, target}`` each.
    """
    if not os.path.exists(frontend):
        return {"name": name, "result": True, "changes": {},
                "comment": f"qmail's front end {frontend} is not installed yet"}
    return _apply(name, "alternative", f"Alternative {name} is qmail's front end",
                  f"Alternative {name} would be set to {frontend}",
                  f"Alternative {name} set to {frontend}",
                  name, link, frontend, priority, slaves=slaves, journal=journal)


def mailer_conf_managed(name, frontend, qread, journal=None):
    """
    mailer.conf(5) ``name`` sends ``sendmail`` and ``send-mail`` to qmail's
    ``frontend`` and ``mailq`` to ``qread``; other lines are kept.
    """
    return _apply(name, "mailer_conf", f"{name} points to qmail",
                  f"{name} would point to qmail", f"{name} points to qmail",
                  name, frontend, qread, journal=journal)


def restored(name):
    """
    Everything saved in journal ``name`` is back: links, alternatives,
    mailer.conf, the sendmail binary (file, mode, owner), its boot setting,
    and its services run again if they ran before. The journal is removed
    afterwards.
    """
    return _apply(name, "restore", "Nothing of sendmail is left to restore",
                  "sendmail would be restored", "sendmail restored", journal=name)
