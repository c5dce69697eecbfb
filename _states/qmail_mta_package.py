"""
Debian's dummy ``mail-transport-agent`` package, built for qmail
(qmail.sendmail). Installing and purging it is Salt's own ``pkg`` states.

.. code-block:: yaml

    qmail-sendmail-mta-package-qmail_mta_package-built:
      qmail_mta_package.built:
        - name: /var/lib/qmail-formula/qmail-formula-mta.deb
        - root: /var/lib/qmail-formula/qmail-formula-mta
        - control:
          - 'Package: qmail-formula-mta'
          - 'Version: 1.0'
          - 'Architecture: all'
          - 'Maintainer: root <root@localhost>'
          - 'Provides: mail-transport-agent'
          - 'Description: qmail is the MTA'
"""

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_mta_package"


def __virtual__():
    if "qmail_mta_package.build" in __salt__:
        return __virtualname__
    return (False, "the qmail_mta_package execution module is not available")


def built(name, root, control):
    """
    The package ``name`` (a .deb path) is built from ``root``, whose
    ``DEBIAN/control`` holds the lines ``control``. It is rebuilt only when
    missing, older than its control file, or when the control file changes;
    ``test=True`` says what would be built and runs nothing.

    name
        The .deb to build.
    root
        The package's tree (``DEBIAN/control`` only).
    control
        The control file's lines.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__["test"])
    try:
        changes = __salt__["qmail_mta_package.build"](root, name, control, test=test)
    except (CommandExecutionError, SaltInvocationError, OSError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    if not changes:
        ret["comment"] = f"{name} is up to date"
        return ret
    ret["changes"] = {"built": name, **({"control": changes["control"]}
                                         if "control" in changes else {})}
    if test:
        ret.update(result=None, comment=f"{name} would be built from {root}")
    else:
        ret["comment"] = f"{name} built from {root}"
    return ret


def installed(name, source):
    """
    Package ``name`` is installed from the .deb ``source`` with Salt's
    ``pkg.installed`` (``sources``), unless an installed package already
    provides ``mail-transport-agent`` (this one, or sendmail-bin, which
    conflicts with any other provider): then nothing is done.

    Decided here rather than with ``unless``: a requisite check on a state
    module without ``mod_run_check`` makes Salt load every module of the
    minion (seconds per run, tens of seconds on a busy host).

    name
        The package's name.
    source
        The .deb built by ``built``.
    """
    try:
        providers = __salt__["qmail_mta_package.providers"]()
    except (CommandExecutionError, SaltInvocationError) as exc:
        return {"name": name, "result": False, "changes": {}, "comment": str(exc)}
    if providers:
        return {"name": name, "result": True, "changes": {},
                "comment": "mail-transport-agent is provided by " + ", ".join(providers)}
    # The lab and many hosts reach no mirror: the .deb needs none.
    return __states__["pkg.installed"](name=name, sources=[{name: source}], refresh=False)
