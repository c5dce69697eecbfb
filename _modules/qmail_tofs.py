"""
Overridable files, the template-formula way ("TOFS"): which text a file
state of the formula writes, or which salt:// file it takes.

For each grain named in ``qmail:tofs:files_switch`` (default: the minion's
``id``, then its ``os_family``) the folder named by that grain's value comes
first, then ``default``::

    salt://qmail/files/ccs.cla.kobe-u.ac.jp/service/smtpd-run
    salt://qmail/files/Debian/service/smtpd-run
    salt://qmail/files/default/service/smtpd-run

A file of your own in one of them (in your own file_roots, ahead of the
formula's) replaces the formula's: ``contents`` renders it with the state's
values; with none, the formula's own text (``_utils/qmail_texts.py``) is
written. The filter's two programs are files of the formula's
``default`` folder (``files_switch``). ``qmail:tofs:source_files:<key>``
replaces the file names tried for the state whose key is ``<key>``;
``qmail:tofs:path_prefix`` and ``qmail:tofs:dirs:files`` move the tree.

This is Python rather than a Jinja macro so that the file server is listed
once per state run, not once per SLS file, and no SLS file has to import
and compile a macro library.
"""

import functools
import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_tofs"


def __virtual__():
    if "qmail_runcache.lookup" in __utils__:
        return __virtualname__
    return (False, "the qmail_runcache utils are not available (run saltutil.sync_all first)")


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def candidates(files, key, tofs=None):
    """
    The salt:// paths tried for the file state ``key`` (its formula files
    ``files``), first choice first, from the ``tofs`` settings (default:
    this minion's ``qmail:tofs``, merged as ``qmail_settings.show`` does).

    CLI Example::

        salt '*' qmail_tofs.candidates '[service/smtpd-run]' smtpd-run
    """
    key = _v("matches")(key, "key", r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", "a file key")
    files = _v("each")(files, "files", "salt_path")
    if tofs is None:
        tofs = __salt__["qmail_settings.get"]("tofs")
    return __utils__["qmail_tofs.candidates"](files, key, tofs, __salt__["grains.get"],
                                             __utils__["qmail_validate.plain"])


def files_switch(files, key, tofs=None, saltenv="base"):
    """
    The source of the file state ``key``: the first of ``candidates`` that
    the file server holds (listed once per state run), or, when none is
    listed (another saltenv, a listing Salt could not give), all of them for
    Salt to try in order.

    CLI Example::

        salt '*' qmail_tofs.files_switch '[service/smtpd-run]' smtpd-run
    """
    if tofs is None:
        tofs = __salt__["qmail_settings.get"]("tofs")
    tried = candidates(files, key, tofs)
    listed = _listed(tofs, saltenv)
    for source in tried:
        if source[len("salt://"):] in listed:
            return source
    log.debug("no TOFS source of %s is listed; Salt tries %s", key, tried)
    return tried


def _listed(tofs, saltenv):
    """The files under the TOFS folder, one listing per state run."""
    top = f"{tofs['path_prefix']}/{tofs['dirs']['files']}"
    run = __context__.value() if hasattr(__context__, "value") else __context__
    return __utils__["qmail_runcache.listing"](run, __salt__["cp.list_master"], top,
                                               saltenv=saltenv)


def contents(files, key, context, tofs=None, saltenv="base"):
    """
    The text of the file state ``key`` for the values ``context``: a file of
    the site's own, the first of ``candidates`` that the file server lists,
    rendered with Jinja as ``file.managed`` renders a template; when none is
    listed, the formula's default text (``_utils/qmail_texts.py``, named by
    the first of ``files``), which costs the apply no file server round trip.
    When the listing is empty (another saltenv, a listing Salt could not
    give), each candidate is asked for in turn.

    CLI Example::

        salt '*' qmail_tofs.contents '[service/send-run]' send-run '{home: /var/qmail}'
    """
    if not isinstance(context, dict):
        raise SaltInvocationError(f"context: a mapping of the file's values, not {context!r}")
    if tofs is None:
        tofs = __salt__["qmail_settings.get"]("tofs")
    tried = candidates(files, key, tofs)
    listed = _listed(tofs, saltenv)
    for source in tried:
        if listed and source[len("salt://"):] not in listed:
            continue
        text = __salt__["cp.get_file_str"](source, saltenv=saltenv)
        if text is not False:
            return __salt__["file.apply_template_on_contents"](
                text, template="jinja", context=context, defaults=None, saltenv=saltenv)
    try:
        default = __utils__["qmail_texts.text"](files[0], context)
    except ValueError as exc:
        raise SaltInvocationError(f"context: {exc}") from None
    if default is None:
        raise CommandExecutionError(f"{key}: no file of {tried} is on the file server, and "
                                    f"the formula has no default text for {files[0]}")
    return default
