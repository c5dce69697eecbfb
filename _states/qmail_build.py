"""
Install qmail built from a verified source tarball.

.. code-block:: yaml

    qmail-build-tree-qmail_build-installed:
      qmail_build.installed:
        - name: /var/qmail
        - source:
            preset: notqmail-1.09
            url: salt://qmail-src/notqmail-1.09.tar.xz
            hash: sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52
            runtime_ids: true
        - conf:
            conf-qmail: /var/qmail
            conf-split: '23'
        - workdir: /var/cache/qmail-build
        - share:
            builder: build1.example.org
            wait: 600

``qmail_build.source_verified`` (same arguments but ``workdir`` and
``share``) checks the tarball first, so that a wrong hash fails before any
other state changes the host.

Nothing is fetched or built when the record in the qmail home says the same
source and conf-* are installed. Otherwise ``changes`` says what was
installed (``installed``: old/new record), how (``compiled`` true/false,
``from``), and whether the tree was published for the fleet: a service
state can restart qmail-send with ``onchanges``.
"""

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_build"


def __virtual__():
    if "qmail_build.build" in __salt__:
        return __virtualname__
    return (False, "the qmail_build execution module is not available")


def source_verified(name, source, conf):
    """
    Check the source tarball against its hash before anything else of the
    build changes the host (the accounts ``require`` this state): a mismatch
    fails here, and a downloaded copy is deleted. Nothing is fetched when
    ``name`` (the qmail home) already holds this build. Verifying is no
    change: ``changes`` stays empty, in test mode too.

    name
        The qmail home.
    source, conf
        As for ``installed``.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        path = __salt__["qmail_build.verify_source"](name, source, conf)
    except (SaltInvocationError, CommandExecutionError, OSError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    if path:
        ret["comment"] = f"{source['url']} matches {source['hash']}"
    else:
        ret["comment"] = f"qmail {source['preset']} is installed in {name}: nothing to verify"
    return ret


def installed(name, source, conf, workdir=None, share=None):
    """
    Make the qmail home ``name`` hold qmail built from ``source`` with the
    ``conf`` (conf-* file -> contents) values.

    name
        The qmail home (conf-qmail).
    source
        ``preset``, ``url``, ``hash`` (``sha256=HEX``) and the release's traits
        ``runtime_ids`` and ``errno_fix``, as ``qmail_build.check_settings``
        derives them (``build_source``).
    conf
        conf-* file name -> contents (``build_conf``).
    workdir
        Where sources are extracted and built and the build log is kept
        (left out: the settings' ``build:workdir``, as the module takes it).
    share
        ``builder`` (the minion that compiles for the fleet) and ``wait``
        (seconds the others wait for its tree).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        predicted = __salt__["qmail_build.check_changes"](name, source, conf)
    except (SaltInvocationError, CommandExecutionError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    if not predicted:
        ret["comment"] = f"qmail {source['preset']} ({source['hash']}) is installed in {name}"
        return ret
    if __opts__["test"]:
        ret.update(
            result=None,
            changes={"installed": predicted},
            comment=f"qmail {source['preset']} would be built and installed in {name}",
        )
        return ret
    try:
        done = __salt__["qmail_build.build"](name, source, conf, workdir, share or {})
    except (SaltInvocationError, CommandExecutionError, OSError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret["changes"] = {
        "installed": {"old": predicted["old"], "new": done["record"]},
        "compiled": done["compiled"],
        "from": done["from"],
        "files": done["files"],
    }
    if done.get("published"):
        ret["changes"]["published"] = done["id"]
    elif done.get("sharing"):
        # Installed all the same; the other hosts will compile for themselves.
        ret["warnings"] = [
            "could not publish the tree for the fleet: the master needs "
            "file_recv: True and minionfs in fileserver_backend"
        ]
    how = "compiled" if done["compiled"] else f"installed from {done['from']}"
    ret["comment"] = f"qmail {source['preset']} {how} into {name}"
    if done.get("log"):
        ret["comment"] += f" (build log: {done['log']})"
    return ret
