"""
Authenticated submission and a smarthost with credentials (``__utils__``),
both from the SMTP AUTH patch of ``qmail:source:patches``: the schema of
``qmail:submission`` and ``qmail:smarthost``, and the text of the two files
they make. No dunder: ``qmail_settings`` (the schema's owner) passes its
validators in, as it does for ``_utils/qmail_patches.py``.

- ``qmail:submission:users``: name -> crypt hash, written as a passwd(5)
  file that ``cvm-pwfile`` reads per login (``CVM_PWFILE_PWCMP=crypt``).
  Only the schemes Debian's libcrypt takes and that are still fit for
  passwords: yescrypt (``$y$``) and sha512-crypt (``$6$``).
- ``qmail:smarthost``: ``control/authsenders``, the patched qmail-remote's
  ``:host:port|user|password`` (every sender, every remote recipient).

Secrets never reach an error message: a message names the key and what is
wrong with the value, never the value.
"""

import re

from salt.exceptions import SaltInvocationError

SUBMISSION = "qmail:submission"
SMARTHOST = "qmail:smarthost"
_B64 = "[./0-9A-Za-z]"
# crypt(5) of libxcrypt: the hash's form per scheme (salt and output in
# crypt's base-64 alphabet; sha512-crypt may give rounds=N).
SCHEMES = {
    "$y$": ("yescrypt", re.compile(rf"\$y\${_B64}+\${_B64}{{1,86}}\${_B64}{{43}}")),
    "$6$": ("sha512-crypt", re.compile(
        rf"\$6\$(rounds=[1-9][0-9]{{3,8}}\$)?{_B64}{{1,16}}\${_B64}{{86}}")),
}
# Schemes a user may paste that crypt takes but that are refused here.
OLD_SCHEMES = {"$1$": "md5-crypt", "$2a$": "bcrypt", "$2b$": "bcrypt", "$2y$": "bcrypt",
               "$5$": "sha256-crypt", "$7$": "scrypt", "$gy$": "gost-yescrypt",
               "$sha1$": "sha1-crypt", "$md5": "Sun md5-crypt"}
# A login name: one passwd(5) field (no ':'), one line, and nothing the
# SMTP client or cvm would split (no space, no '|').
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]{0,127}")
# qmail-remote's authsenders: user and password end at '|' and at the line's
# end; control_readfile drops trailing blanks and takes no NUL.
_SMARTHOST_USER_RE = re.compile(r"[!-{}~]{1,255}")  # printable ASCII but | and space
MAX_PASSWORD = 1024
REDACTED = "**********"


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def _user_name(name, where):
    if not isinstance(name, str):
        _fail(where, "a user name is text")
    if ":" in name or "\n" in name or "\r" in name:
        _fail(where, "a user name with ':' or a line break would split the password "
                     "file's entry: use letters, digits and . _ @ + = -")
    if not _USER_RE.fullmatch(name):
        _fail(where, "not a user name: 1 to 128 of letters, digits and . _ @ + = - "
                     "(starting with a letter or digit)")


def check_hash(value, where):
    """A crypt hash of a scheme in SCHEMES; anything else is refused, never
    quoted (it may be a password typed in plain text)."""
    if not isinstance(value, str) or not value:
        _fail(where, "expected a crypt hash (yescrypt $y$... or sha512-crypt $6$...)")
    for prefix, (_name, form) in SCHEMES.items():
        if value.startswith(prefix):
            if not form.fullmatch(value):
                _fail(where, f"not a whole {_name} hash ({prefix}...): copy the line "
                             "mkpasswd printed, without blanks")
            return value
    for prefix, name in sorted(OLD_SCHEMES.items(), key=lambda p: -len(p[0])):
        if value.startswith(prefix):
            _fail(where, f"a {name} hash: not accepted; use yescrypt ($y$, "
                         "mkpasswd -m yescrypt) or sha512-crypt ($6$, mkpasswd -m "
                         "sha-512)")
    if value.startswith("$"):
        _fail(where, "an unknown hash scheme: use yescrypt ($y$, mkpasswd -m yescrypt) or "
                     "sha512-crypt ($6$, mkpasswd -m sha-512)")
    _fail(where, "looks like a password in plain text: give its crypt hash "
                 "(mkpasswd -m yescrypt), never the password")
    return None


def check_users(users, key, v):
    """``qmail:submission:users`` (name -> hash), checked; a dict sorted by name."""
    v("mapping")(users, key)
    checked = {}
    for name in sorted(users, key=str):
        where = f"{key}:{name}"
        _user_name(name, where)
        checked[name] = check_hash(users[name], where)
    return checked


def check_submission(settings, v, patch_hashes):
    """``qmail:submission`` against the rest of the settings: AUTH only on
    the implicit-TLS service (tlswrapper-smtp on port 25 would announce it
    before STARTTLS and could not require TLS), from a build with the AUTH
    patch (``patch_hashes``: the stack's hashes, ``algo=hex``)."""
    sub = settings["submission"]
    v("boolean")(sub["enable"], f"{SUBMISSION}:enable")
    sub["users"] = check_users(sub["users"], f"{SUBMISSION}:users", v)
    known = v("list_of")(sub["auth_patches"], f"{SUBMISSION}:auth_patches")
    if not sub["enable"]:
        return sub
    if settings["role"] != "spool":
        _fail(f"{SUBMISSION}:enable", "a client takes no mail (qmail:role: client): "
                                      "submission runs on the spool")
    tls = settings["tls"]
    if not (tls["enable"] and tls["smtps"]):
        _fail(f"{SUBMISSION}:enable", "AUTH runs only on the implicit-TLS service: set "
                                      "qmail:tls:enable and qmail:tls:smtps to true "
                                      "(never on port 25: passwords would cross in clear)")
    if not set(known) & set(patch_hashes):
        _fail(f"{SUBMISSION}:enable", "needs the SMTP AUTH patch in qmail:source:patches "
                                      "(notqmail's patches/notqmail/smtp-auth; its hash is "
                                      f"one of {SUBMISSION}:auth_patches): unpatched "
                                      "qmail-smtpd has no AUTH")
    if not sub["users"]:
        _fail(f"{SUBMISSION}:users", "empty: with submission on, give at least one user")
    missing = settings["lookup"]["service"]["cvm_missing"]
    if missing:
        # A release fact of parameters/ (osfinger/Debian-13.yaml).
        _fail(f"{SUBMISSION}:enable", f"{missing}: AUTH checks passwords with "
                                      "cvm-checkpassword; set qmail:submission:enable: false "
                                      "on this host")
    return sub


def check_smarthost(settings, v, patch_hashes):
    """``qmail:smarthost``: empty host: none. Otherwise a host, port, user
    and password for the patched qmail-remote."""
    sh = settings["smarthost"]
    if sh["host"] == "":
        for name in ("user", "password"):
            if sh[name] != "":
                _fail(f"{SMARTHOST}:{name}", f"set without {SMARTHOST}:host")
        sh["enable"] = False
        return sh
    host = sh["host"]
    if isinstance(host, str) and host.startswith("[") and host.endswith("]"):
        v("ipv4")(host[1:-1], f"{SMARTHOST}:host")  # qmail-remote's [address] form
    else:
        v("mail_host")(host, f"{SMARTHOST}:host")
    sh["port"] = v("integer")(sh["port"], f"{SMARTHOST}:port", 1, 65535)
    user, password = sh["user"], sh["password"]
    if not isinstance(user, str) or not _SMARTHOST_USER_RE.fullmatch(user):
        _fail(f"{SMARTHOST}:user", "required with a host: 1 to 255 printable ASCII "
                                   "characters, no space and no '|' (qmail-remote's "
                                   "authsenders separator)")
    if not isinstance(password, str) or not password:
        _fail(f"{SMARTHOST}:password", "required with a host (the ISP's password for user)")
    if len(password) > MAX_PASSWORD or any(c in password for c in "\n\r\0"):
        _fail(f"{SMARTHOST}:password", "one line of at most 1024 characters: qmail-remote "
                                       "reads authsenders line by line")
    if password != password.rstrip(" \t"):
        _fail(f"{SMARTHOST}:password", "ends with a blank, which qmail's control file "
                                       "reader drops: the ISP would get another password")
    if settings["role"] != "spool":
        _fail(f"{SMARTHOST}:host", "a client sends everything to qmail:spool: the spool "
                                   "takes the smarthost")
    if "smtproutes" in settings["control_managed"]:
        _fail(f"{SMARTHOST}:host", "qmail-remote reads authsenders first and would ignore "
                                   "qmail:control:smtproutes: set one or the other")
    if not set(settings["submission"]["auth_patches"]) & set(patch_hashes):
        _fail(f"{SMARTHOST}:host", "needs the SMTP AUTH patch in qmail:source:patches "
                                   f"(a hash of {SUBMISSION}:auth_patches): unpatched "
                                   "qmail-remote has no AUTH and would ignore authsenders")
    sh["enable"] = True
    return sh


def redacted(smarthost):
    """``smarthost`` for display (qmail_settings.show, the SLS files): the
    password replaced."""
    shown = dict(smarthost)
    if shown.get("password"):
        shown["password"] = REDACTED
    return shown


# --------------------------------------------------------------------------
# The files
# --------------------------------------------------------------------------
def passwd_text(users, uid, gid, home):
    """The passwd(5) file ``cvm-pwfile`` reads: one entry per user, with the
    uid and gid qmail-smtpd runs as (cvm-checkpassword switches to the
    entry's ids, which qmaild can only do to its own: any other fails the
    login with 535)."""
    return "".join(f"{name}:{hashed}:{int(uid)}:{int(gid)}:qmail submission:{home}:"
                   "/usr/sbin/nologin\n" for name, hashed in sorted(users.items()))


def passwd_users(text):
    """name -> (hash, uid, gid) of a passwd(5) text (what the file holds now)."""
    found = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) == 7:
            found[fields[0]] = (fields[1], fields[2], fields[3])
    return found


def authsenders_text(host, port, user, password):
    """control/authsenders for one smarthost: every sender (the empty key),
    to ``host:port``, authenticated as ``user``."""
    return f":{host}:{int(port)}|{user}|{password}\n"
