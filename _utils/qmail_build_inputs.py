"""
What a qmail build is made of, as data (``__utils__``): the releases the
formula knows (``presets``), a source hash as given in the pillar
(``parse_hash``) and the ``conf-*`` files of a build (``conf_files``).
Pure: nothing here reads the host or the pillar. ``qmail_settings`` checks
``qmail:source`` and ``qmail:build`` with these; ``qmail_build`` builds
with them.

The loader gives ``_utils`` modules no ``__utils__``: the callers pass
``plain``, the loader's ``qmail_validate.plain`` (the getter of the shared
validators, ``_utils/qmail_validate.py``).
"""

import re

from salt.exceptions import SaltInvocationError


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


# Known releases. ``runtime_ids``: the binaries look accounts up at run time,
# so the staged tree (DESTDIR) is portable between hosts; ``errno_fix``:
# error.h declares ``extern int errno``, which does not link on glibc;
# ``alloc_fix``: spawn.c calls alloc() undeclared, which breaks on 64 bits;
# ``implicit_fix``: the source calls functions it never declares (unistd.h's,
# and its own) and has K&R ``main()``s, which gcc >= 14 refuses.
PRESETS = {
    "notqmail-1.09": {
        "url": "https://github.com/notqmail/notqmail/releases/download/"
        "notqmail-1.09/notqmail-1.09.tar.xz",
        "hash": "sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52",
        "runtime_ids": True,
        "errno_fix": False,
    },
    "netqmail-1.06": {
        "url": "https://www.qmail.org/netqmail-1.06.tar.gz",
        "hash": "sha256=8e7d98d15211fc9f9c28109e942e2268f42a6672d68df92a42f2afa90ff00532",
        "runtime_ids": False,
        "errno_fix": False,
        "implicit_fix": True,
    },
    "qmail-1.03": {
        "url": "https://cr.yp.to/software/qmail-1.03.tar.gz",
        "hash": "sha256=21ed6c562cbb55092a66197c35c8222b84115d1acab0854fdb1ad1f301626f88",
        "runtime_ids": False,
        "errno_fix": True,
        "alloc_fix": True,
        "implicit_fix": True,
    },
}

GROUPS = ("qmail", "nofiles")
# conf-users order: alias, daemon, log, owner of the files, passwd, queue,
# remote, send.
CONF_USERS = ("alias", "qmaild", "qmaill", None, "qmailp", "qmailq", "qmailr", "qmails")

CONF_KEYS = ("cc", "ld", "spawn", "split", "patrn", "break")
_HASH_RE = re.compile(r"(?:(sha256|sha512)[=:])?([0-9a-fA-F]+)")


def parse_hash(value, key="qmail:source:hash"):
    """
    Split a hash given as ``sha256=HEX``, ``sha256:HEX`` or a bare hex digest
    (its length says sha256 or sha512) into ``(algorithm, hexdigest)``.

    """
    match = _HASH_RE.fullmatch(value.strip(" \t")) if isinstance(value, str) else None
    if not match:
        _fail(key, f"{value!r} is not sha256=<hex> or sha512=<hex>")
    algo, digest = match.group(1), match.group(2).lower()
    lengths = {"sha256": 64, "sha512": 128}
    algo = algo or {64: "sha256", 128: "sha512"}.get(len(digest))
    if algo is None or len(digest) != lengths[algo]:
        _fail(key, f"{value!r}: a sha256 digest has 64 hex digits, a sha512 128")
    return algo, digest


def conf_files(home, users, groups, conf, plain):
    """
    The contents of the ``conf-*`` files for a qmail home, the account names
    (INSTALL.ids keys -> names) and ``qmail:build:conf``.

    """
    v = plain
    home = v("path")(home, "home")
    for name in (k for k in CONF_USERS if k):
        v("account")(v("fields")(users, "users", [name])[name], f"users:{name}")
    for name in GROUPS:
        v("account")(v("fields")(groups, "groups", [name])[name], f"groups:{name}")
    v("fields")(conf, "conf", CONF_KEYS)
    return {
        "conf-qmail": home,
        "conf-users": "\n".join(users[k] if k else "root" for k in CONF_USERS),
        "conf-groups": "\n".join(groups[k] for k in GROUPS),
        "conf-cc": conf["cc"],
        "conf-ld": conf["ld"],
        "conf-spawn": str(conf["spawn"]),
        "conf-split": str(conf["split"]),
        "conf-patrn": str(conf["patrn"]),
        "conf-break": conf["break"],
    }


def presets():
    """
    The releases the formula knows: preset name -> url, hash and traits
    (``runtime_ids``, ``errno_fix``, ``alloc_fix``, ``implicit_fix``). ``qmail_settings``
    checks ``qmail:source`` against them.

    """
    return {name: dict(preset) for name, preset in PRESETS.items()}


