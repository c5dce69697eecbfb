"""
Small system text files that ``qmail.sendmail`` edits in place
(``__utils__``): FreeBSD's rc.conf and RedHat's /etc/sysconfig/sendmail
(shell-style ``key=value``), IRIX's /etc/config/sendmail and FreeBSD's
mailer.conf.

The files are read as latin-1, so every byte the formula does not change
stays as it was; ``set_keys``/``unset_keys`` are pure text functions. The
callers write the result back with ``qmail_files.rewrite`` (the file's mode
and owner kept, a symlinked file stays a symlink).
"""

import logging
import re

log = logging.getLogger(__name__)

# One shell assignment ``key=value`` at the start of a line or after ``;``:
# the value is a run of quoted strings and unquoted non-blank characters.
_STATEMENT_RE = re.compile(
    r"""(?P<lead>(?:^|;)[ \t]*(?:export[ \t]+)?)(?P<key>[A-Za-z_][A-Za-z0-9_]*)="""
    r"""(?P<value>(?:"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s;"'#])*)""",
    re.MULTILINE,
)


def read(path):
    """The text of ``path`` (latin-1: any byte round-trips), None when it
    does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("latin-1")
    except FileNotFoundError:
        return None


def _assignments(line, key):
    """The spans of ``key=value`` in one line (not inside a comment)."""
    code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
    return [m.span("key")[0:1] + m.span("value")[1:2]
            for m in _STATEMENT_RE.finditer(code) if m.group("key") == key]


def set_keys(text, wanted):
    """
    ``text`` with every assignment of each key of ``wanted`` (key ->
    ``key=value``) replaced by that assignment, or the line appended when
    the key is not set; other statements on the same line and every other
    line stay byte for byte. Returns the new text and, per key, the
    assignments it replaced (what ``unset_keys`` puts back).
    """
    lines = (text or "").split("\n")
    originals = {}
    for key, assignment in wanted.items():
        originals[key] = []
        found = False
        for i, line in enumerate(lines):
            spans = _assignments(line, key)
            originals[key].extend(line[start:end] for start, end in spans)
            for start, end in reversed(spans):
                line = line[:start] + assignment + line[end:]
                found = True
            lines[i] = line
        if not found:
            if lines and lines[-1] == "":
                lines[-1:] = [assignment, ""]
            else:
                lines.append(assignment)
                lines.append("")
    return "\n".join(lines), originals


def unset_keys(text, wanted, originals):
    """Undo ``set_keys``: the assignments it wrote go back to the saved ones
    (lines it appended are removed); assignments changed since stay."""
    lines = text.split("\n")
    for key, assignment in wanted.items():
        saved = list(originals.get(key, []))
        for i, line in enumerate(lines):
            if line is None:
                continue
            spans = [(a, b) for a, b in _assignments(line, key) if line[a:b] == assignment]
            if not saved:
                if spans and line.strip() == assignment:
                    lines[i] = None
                continue
            spans = spans[:len(saved)]
            back, saved = saved[:len(spans)], saved[len(spans):]
            # Equal lengths by construction; no strict=: minions run Python 3.9 too.
            for (start, end), original in reversed(list(zip(spans, back))):  # noqa: B905
                line = line[:start] + original + line[end:]
            lines[i] = line
    return "\n".join(line for line in lines if line is not None)
