"""
The stack of source patches (``qmail:source:patches``, ``__utils__``): its
schema and its part of the build's identity. No dunder: the validators
(``VALIDATORS`` of ``qmail_validate``) and the hash parser are passed in by
``qmail_settings`` (the schema's owner).

A stack is an ordered list of ``{url, hash, strip, applies_to}``: ``url``
and ``hash`` as for the source tarball (the hash is mandatory: a patch
changes the code that runs as root), ``strip`` the ``patch -p`` count
(default 1), ``applies_to`` the presets it was made for (default: any).
The identity of a patched build is the ordered list of (hash, strip): the
same bytes applied the same way make the same tree, wherever they were
downloaded from.
"""

from salt.exceptions import SaltInvocationError

KEY = "qmail:source:patches"
FIELDS = ("url", "hash", "strip", "applies_to")
DEFAULT_STRIP = 1
MAX_STRIP = 16  # path components: qmail's trees are one level deep
# What check_stack asks of qmail_validate (passed in as plain functions).
VALIDATORS = ("list_of", "mapping", "source_url", "string", "integer")


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def _applies_to(value, where, presets):
    """The presets a patch was made for: a non-empty list of known names."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        _fail(where, "expected a non-empty list of presets (leave it out: any preset)")
    for j, name in enumerate(value):
        if not isinstance(name, str) or name not in presets:
            _fail(f"{where}:{j}", f"{name!r} is not a preset; known: " + ", ".join(presets))
    return list(value)


def validators():
    """The names of the ``qmail_validate`` functions ``check_stack`` takes."""
    return VALIDATORS


def check_stack(given, preset, presets, checks, parse_hash, key=KEY):
    """
    Check ``given`` (the pillar's list) for a build of ``preset``; return the
    stack as the build takes it: ``[{url, hash (algo=hex), strip,
    applies_to}]``. ``presets``: the known preset names; ``checks``: name ->
    validator of ``qmail_validate`` (``validators()``); ``parse_hash(value, key)``:
    ``qmail_build.parse_hash``. Errors name ``qmail:source:patches:N:field``.
    """
    v = checks.__getitem__
    v("list_of")(given, key)
    stack, seen = [], {}
    for i, entry in enumerate(given):
        where = f"{key}:{i}"
        v("mapping")(entry, where)
        for name in entry:
            if name not in FIELDS:
                _fail(f"{where}:{name}", "unknown key; known keys: " + ", ".join(FIELDS))
        for name in ("url", "hash"):
            if entry.get(name) in (None, ""):
                _fail(f"{where}:{name}", "required: every patch comes with its url and hash")
        url = v("source_url")(entry["url"], f"{where}:url")
        v("string")(entry["hash"], f"{where}:hash")
        algo, digest = parse_hash(entry["hash"], f"{where}:hash")
        digest = f"{algo}={digest}"
        if digest in seen:
            _fail(f"{where}:hash", f"the same patch as {key}:{seen[digest]}: a patch "
                                   "applies once")
        seen[digest] = i
        strip = entry.get("strip")
        strip = DEFAULT_STRIP if strip is None else v("integer")(
            strip, f"{where}:strip", 0, MAX_STRIP)
        made_for = _applies_to(entry.get("applies_to"), f"{where}:applies_to", presets)
        if made_for is not None and preset not in made_for:
            _fail(f"{where}:applies_to",
                  f"the patch is made for {', '.join(made_for)}, not for qmail:source:preset "
                  f"{preset}")
        stack.append({"url": url, "hash": digest, "strip": strip, "applies_to": made_for})
    return stack


def identity(stack):
    """The stack's part of the build identity (``qmail_build``'s record and
    build id): ``{"patches": [{hash, strip}, ...]}`` in order, or ``{}`` for
    no patches, so that an unpatched build keeps the identity it had before
    patches existed (no rebuild, the same fleet id)."""
    if not stack:
        return {}
    return {"patches": [{"hash": p["hash"], "strip": p["strip"]} for p in stack]}


def recorded(have, want):
    """The recorded identity (``have``, the install record; None when there
    is none) to compare with ``want``: its keys, and the recorded patches
    when there are any (taking the stack away rebuilds too)."""
    if not have:
        return None
    current = {k: have.get(k) for k in want if k != "patches"}
    if have.get("patches"):
        current["patches"] = have["patches"]
    return current


def fetch_stack(source, fetch):
    """Fetch and verify every patch of ``source``'s stack in order with
    ``fetch(url, hash, key)`` (``qmail_build.fetch``, whose errors then name
    ``qmail:source:patches:N``); the local paths."""
    stack = source.get("patches") or ()
    return [fetch(p["url"], p["hash"], f"{KEY}:{i}") for i, p in enumerate(stack)]


def patch_command(srcdir, path, strip, dry_run=False):
    """The ``patch`` argument list that applies ``path`` to ``srcdir``:
    never asks (``--batch``), refuses a patch already applied
    (``--forward``), takes no fuzz (the context must match exactly: a hunk
    that lands elsewhere changes code its author never saw), leaves no
    ``.orig``/``.rej`` files."""
    cmd = ["patch", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch",
           "--reject-file=-", f"-p{int(strip)}", "-d", srcdir, "-i", path]
    if dry_run:
        cmd.insert(1, "--dry-run")
    return cmd
