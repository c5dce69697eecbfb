"""
The stack of source patches of a qmail build (``qmail:source:patches``):
try the whole stack in a throwaway copy of the source, and apply it to the
build's tree. ``qmail_build`` fetches and verifies the patches (through
``_utils/qmail_patches.py``, which also holds the schema) and calls these;
this module calls no other of the formula's.

Each patch is applied with ``patch --dry-run`` first, then for real, in
order, with no fuzz: a patch that does not apply exactly, on top of the ones
before it, is refused naming ``qmail:source:patches:N`` and leaves the tree
as it was before that patch.
"""

import functools
import logging
import os
import shutil
import tempfile

import salt.utils.path
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_patches"

KEY = "qmail:source:patches"


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _stack(patches):
    patches = _v("list_of")(patches or [], "patches")
    for i, patch in enumerate(patches):
        _v("fields")(patch, f"{KEY}:{i}", ("url", "hash", "strip"))
    return patches


def tool():
    """
    The path of the ``patch`` program, or "" when it is not installed
    (``qmail:lookup:patch_package`` installs it when the stack is not empty).

    CLI Example::

        salt '*' qmail_patches.tool
    """
    return salt.utils.path.which("patch") or ""


def _run(cmd):
    return __salt__["cmd.run_all"](cmd, python_shell=False, redirect_stderr=True,
                                   output_loglevel="quiet", ignore_retcode=True)


def _tail(text, lines=12):
    return "\n".join(text.strip().splitlines()[-lines:])


def apply_stack(srcdir, patches, paths, log=None):
    """
    Apply ``patches`` (their local, verified ``paths``: ``fetch_stack`` of the utils
    returns them) to the source tree ``srcdir``, in order: each one tried
    with ``patch --dry-run`` on top of those before it, then applied. A
    patch that does not apply is refused naming ``qmail:source:patches:N``
    (with what patch said), before it changes anything. ``log``: a build
    log to append patch's output to. Returns the number of patches applied.

    CLI Example::

        salt '*' qmail_patches.apply_stack /var/cache/qmail-build/src \
            "[{url: /srv/auth.patch, hash: 'sha256=c7627aca0af336b4fb1f05a3529696f2508caac2746f8afe05700520057aaf2f', strip: 1}]" \
            "[/srv/auth.patch]"
    """  # noqa: E501 (a CLI line with a whole sha256)
    srcdir = _v("existing_dir")(srcdir, "srcdir")
    patches = _stack(patches)
    paths = _v("list_of")(paths or [], "paths")
    if len(paths) != len(patches):
        raise CommandExecutionError(f"{len(patches)} patches but {len(paths)} paths")
    if patches and not tool():
        raise CommandExecutionError(
            f"{KEY}: the patch program is not installed (qmail:lookup:patch_package)")
    command = __utils__["qmail_patches.patch_command"]
    for i, patch in enumerate(patches):
        path = _v("existing_file")(paths[i], f"{KEY}:{i}:url")
        tried = _run(command(srcdir, path, patch["strip"], dry_run=True))
        if tried["retcode"] != 0:
            raise CommandExecutionError(
                f"{KEY}:{i}: {patch['url']} does not apply"
                + (f" on top of {KEY}:0..{i - 1}" if i else "")
                + f" (patch -p{patch['strip']}, no fuzz); nothing was built. patch says:\n"
                + _tail(tried.get("stdout", "")))
        done = _run(command(srcdir, path, patch["strip"]))
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"### {KEY}:{i}: patch -p{patch['strip']} < {patch['url']} "
                             f"({patch['hash']})\n{done.get('stdout', '')}\n")
        if done["retcode"] != 0:  # the dry run passed: only a broken tree gets here
            raise CommandExecutionError(f"{KEY}:{i}: {patch['url']} failed to apply:\n"
                                        + _tail(done.get("stdout", "")))
    return len(patches)


def try_stack(tarball, patches, paths):
    """
    Try ``patches`` (their verified local ``paths``) on a throwaway copy of
    the source ``tarball``: extract it into a private temporary folder,
    apply the stack (``apply_stack``) and remove the folder. Nothing of the
    host changes; raises naming ``qmail:source:patches:N`` when a patch does
    not apply. Returns the number of patches tried.

    CLI Example::

        salt '*' qmail_patches.try_stack /srv/notqmail-1.09.tar.xz \
            "[{url: /srv/auth.patch, hash: 'sha256=c7627aca0af336b4fb1f05a3529696f2508caac2746f8afe05700520057aaf2f', strip: 1}]" \
            "[/srv/auth.patch]"
    """  # noqa: E501 (a CLI line with a whole sha256)
    tarball = _v("existing_file")(tarball, "tarball")
    if not _stack(patches):
        return 0
    scratch = tempfile.mkdtemp(prefix="qmail-patches-")
    try:
        dest = os.path.join(scratch, "src")
        __utils__["qmail_install.extract_into"](tarball, dest)
        found = [e.path for e in os.scandir(dest) if e.is_dir()]
        srcdir = found[0] if len(found) == 1 and not os.path.isfile(
            os.path.join(dest, "Makefile")) else dest
        return apply_stack(srcdir, patches, paths)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
