"""
The sendmail paths that ``qmail_sendmail`` changes, and their undo
(``__utils__``): the binary kept as ``.bak`` (``neutralise``), where a path
leads (to qmail's front end or not, through which alternatives groups), the
mailer.conf(5) text with qmail's entries,
and putting back the binaries (from ``.bak``), the links and mailer.conf
from the undo journal.

The loader gives ``_utils`` modules no ``__salt__`` or ``__utils__``: the
caller passes ``tools``, with ``save`` and ``forget`` (a journal entry),
``alternative`` (an alternatives group as ``--display`` shows it), ``read``
and ``write_text`` (``qmail_keyfile.read``, ``qmail_files.rewrite``),
``fsync_dir`` and ``atomic_symlink`` (``qmail_files``).
"""

import os
import re

import salt.utils.hashutils
import salt.utils.path
from salt.exceptions import CommandExecutionError

# mailer.conf(5) entries qmail takes over, and the qmail program for each.
MAILER_CONF_ENTRIES = (("sendmail", "sendmail"), ("send-mail", "sendmail"),
                       ("mailq", "qmail-qread"))

def is_qmail(path, frontend, also=()):
    """Whether ``path`` leads to qmail's ``frontend`` (or a program beside
    it) or to one of qmail's other front ends ``also`` (qmail:filter's
    wrapper, or qmail's own sendmail while the wrapper is the front end)."""
    real = os.path.realpath(path)
    return any(real == os.path.realpath(front) or real.startswith(
        os.path.realpath(os.path.dirname(front)) + os.sep) for front in (frontend, *also))


def alternatives_groups(path):
    """The alternatives groups whose link ``path``'s symlink chain passes
    through (``.../alternatives/<name>``)."""
    groups = []
    current = os.path.abspath(path)
    for _ in range(40):
        if not os.path.islink(current):
            break
        if os.path.basename(os.path.dirname(current)) == "alternatives":
            groups.append(os.path.basename(current))
        current = os.path.normpath(os.path.join(os.path.dirname(current),
                                                os.readlink(current)))
    return groups


def would_lead_to_qmail(path, frontend, linked_before):
    """Test mode: would ``path`` lead to qmail once the links listed before
    it are made? Follows the link chain by hand."""
    linked_before = {os.path.abspath(p) for p in linked_before}
    current = os.path.abspath(path)
    for _ in range(40):
        if current in linked_before:
            return True
        if not os.path.islink(current):
            return os.path.lexists(current) and is_qmail(current, frontend)
        current = os.path.normpath(os.path.join(os.path.dirname(current),
                                                os.readlink(current)))
    return False


def mailer_conf_text(text, frontend, qread):
    targets = {"sendmail": frontend, "qmail-qread": qread}
    lines = (text or "").splitlines(keepends=True)
    seen = set()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*(\S+)\s+)(\S+)(.*)$", line, re.DOTALL)
        if not m or m.group(2).startswith("#"):
            continue
        for entry, program in MAILER_CONF_ENTRIES:
            if m.group(2) == entry:
                lines[i] = m.group(1) + targets[program] + m.group(4)
                seen.add(entry)
    for entry, program in MAILER_CONF_ENTRIES:
        if entry not in seen:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines.append(f"{entry}\t{targets[program]}\n")
    return "".join(lines)


def restore_binaries(tools, data, test):
    changes = {}
    for real, saved in sorted(data["binaries"].items()):
        bak = real + ".bak"
        if os.path.lexists(real):
            if not test:
                tools.forget("binaries", real)
            continue  # back already (e.g. the package was reinstalled)
        if not os.path.isfile(bak):
            raise CommandExecutionError(f"{bak} is missing: cannot restore {real}")
        changes[real] = {"old": {"path": bak, "mode": f"{os.stat(bak).st_mode & 0o7777:04o}"},
                         "new": {"path": real, "mode": saved["mode"]}}
        if test:
            continue
        # Owner first: chown clears set-id bits that chmod then sets again.
        os.chown(bak, saved["uid"], saved["gid"])
        os.chmod(bak, int(saved["mode"], 8))
        os.rename(bak, real)
        tools.fsync_dir(os.path.dirname(real))
        tools.forget("binaries", real)
    return changes


def restore_links(tools, data, test):
    changes = {}
    for path, saved in sorted(data["links"].items()):
        target = saved["target"]
        current = os.readlink(path) if os.path.islink(path) else None
        if os.path.lexists(path) and current is None:
            raise CommandExecutionError(f"{path} is no longer a link; not replacing it")
        if current != target:
            changes[path] = {"old": current, "new": target}
            if not test:
                if target is None:
                    os.unlink(path)
                else:
                    tools.atomic_symlink(target, path)
        if not test:
            tools.forget("links", path)
    return changes


def restore_mailer_conf(tools, data, test):
    changes = {}
    for path, saved in sorted(data["mailer_conf"].items()):
        old = tools.read(path)
        if old != saved["content"]:
            changes[path] = {"old": old, "new": saved["content"]}
            if not test:
                if saved["content"] is None:
                    os.unlink(path)
                else:
                    tools.write_text(path, saved["content"])
        if not test:
            tools.forget("mailer_conf", path)
    return changes


def neutralise(tools, path, frontend, sendmail_paths, test, also=()):
    """``qmail_sendmail.neutralise`` once its arguments are checked: the
    binary behind ``path`` to ``<real file>.bak``, mode 0, saved first
    (``tools.save``), with the alternatives groups it goes through."""
    if is_qmail(path, frontend, also):
        return {}
    real = os.path.realpath(path)
    bak = real + ".bak"
    if not os.path.lexists(real):
        return {}
    earlier = list(sendmail_paths)[:list(sendmail_paths).index(path)] if (
        path in sendmail_paths) else []
    if test and any(os.path.realpath(p) == real for p in earlier):
        return {}
    if not os.path.isfile(real):
        raise CommandExecutionError(f"{path} leads to {real}, which is not a regular file")
    if os.path.basename(real) == "mailwrapper":
        raise CommandExecutionError(
            f"{path} is mailwrapper(8), not sendmail: list the real sendmail in "
            "qmail:lookup:sendmail_paths and let mailer.conf point to qmail")
    if os.path.lexists(bak):
        raise CommandExecutionError(
            f"both {real} and {bak} exist; the .bak is never overwritten: "
            "compare them and remove one by hand")
    st = os.stat(real)
    changes = {real: {"old": {"path": real, "mode": f"{st.st_mode & 0o7777:04o}"},
                      "new": {"path": bak, "mode": "0000"}}}
    if test:
        return changes
    _save_groups(tools, path)
    tools.save("binaries", real, {
        "mode": f"{st.st_mode & 0o7777:04o}", "uid": st.st_uid, "gid": st.st_gid,
        "size": st.st_size, "sha256": salt.utils.hashutils.get_hash(real, form="sha256"),
        "path": path,
    })
    os.chmod(real, 0)
    os.rename(real, bak)
    tools.fsync_dir(os.path.dirname(real))
    return changes


def _save_groups(tools, path):
    """Save the alternatives groups ``path`` goes through, before its file
    moves: update-alternatives forgets an entry whose file is missing."""
    if not any(salt.utils.path.which(c) for c in ("update-alternatives", "alternatives")):
        return
    for group in alternatives_groups(path):
        status = tools.alternative(group)
        if status:  # a slave's name is no group
            tools.save("groups", group, status)
