"""
Try the stack of source patches (``qmail:source:patches``) before the build
changes the host.

.. code-block:: yaml

    qmail-build-patches-qmail_patches-applicable:
      qmail_patches.applicable:
        - name: /var/qmail
        - source:
            preset: notqmail-1.09
            url: salt://qmail-src/notqmail-1.09.tar.xz
            hash: sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52
            patches:
              - url: salt://qmail-src/notqmail-1.09-smtp-auth.patch
                hash: sha256=c7627aca0af336b4fb1f05a3529696f2508caac2746f8afe05700520057aaf2f
                strip: 1
        - conf:
            conf-qmail: /var/qmail

The whole stack is applied to a throwaway copy of the source (a private
temporary folder, removed after): a patch that does not apply fails here,
naming ``qmail:source:patches:N``, before the accounts or the build. Trying
is no change: ``changes`` stays empty, in test mode too.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "qmail_patches"


def __virtual__():
    if "qmail_patches.try_stack" in __salt__ and "qmail_build.fetch" in __salt__:
        return __virtualname__
    return (False, "the qmail_patches execution module is not available")


def applicable(name, source, conf):
    """
    Check that the patches of ``source`` apply, in order, to its tarball,
    unless ``name`` (the qmail home) already holds this build.

    name
        The qmail home.
    source, conf
        As for ``qmail_build.installed`` (``source:patches``: the stack as
        ``qmail_settings`` checked it).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    patches = source.get("patches") or []
    try:
        if not patches:
            ret["comment"] = "no patches"
            return ret
        if not __salt__["qmail_build.check_changes"](name, source, conf):
            ret["comment"] = f"this build, with its {len(patches)} patches, is installed in {name}"
            return ret
        if not __salt__["qmail_patches.tool"]():
            if __opts__["test"]:  # the package state before this one installs it
                ret.update(result=None, comment=f"the {len(patches)} patches would be tried "
                                                "once the patch program is installed")
                return ret
            raise CommandExecutionError("qmail:source:patches: the patch program is not "
                                        "installed (qmail:lookup:patch_package)")
        # Every patch verified before anything is extracted (qmail_build.fetch).
        tarball = __salt__["qmail_build.fetch"](source["url"], source["hash"])
        paths = __utils__["qmail_patches.fetch_stack"](source, __salt__["qmail_build.fetch"])
        count = __salt__["qmail_patches.try_stack"](tarball, patches, paths)
    except (SaltInvocationError, CommandExecutionError, OSError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret["comment"] = f"the {count} patches apply to {source['preset']} (tried in a scratch copy)"
    return ret
