"""
DKIM keys of ``qmail:filter`` on the spool: which keys are on the host,
what the pillar asks for, and the DNS TXT record that publishes each.

Keys live in ``<lookup:filter:dir>/dkim`` as ``<selector>.<domain>.key``,
owned by the user the chain runs as under qmail-smtpd (qmaild), mode 0400:
tcpserver ``-g`` and tlswrapper ``-u`` give qmail-smtpd's children only
qmaild's primary group, so a group of readers would not reach the filter.
Key material never appears in a return value; only public records do.
"""

import functools
import logging
import os
import pwd

from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_dkim"
KEY_MODE = 0o400
DIR_MODE = 0o711


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _keys_dir(keys_dir):
    if keys_dir is None:
        return __salt__["qmail_settings.get"]("filter:files:keys")
    return _v("path")(keys_dir, "keys_dir")


def _uid(user):
    if user is None:
        user = __salt__["qmail_settings.get"]("lookup:users:qmaild")
    _v("account")(user, "user")
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise SaltInvocationError(f"user: no account {user!r} on this host") from None


def _keys(keys):
    """``keys`` checked: {domain: {selector: text}} (the schema's rules)."""
    _v("mapping")(keys or {}, "keys")
    for domain, selectors in (keys or {}).items():
        _v("fqdn")(domain, f"keys:{domain}")
        _v("mapping")(selectors, f"keys:{domain}")
        for selector in selectors:
            _v("matches")(str(selector), f"keys:{domain}:{selector}",
                          r"[A-Za-z0-9][A-Za-z0-9-]{0,62}", "a selector")
    return keys or {}


def _on_disk(keys_dir):
    """{(domain, selector): path} of the key files in ``keys_dir``."""
    found = {}
    try:
        names = os.listdir(keys_dir)
    except FileNotFoundError:
        return found
    for name in names:
        parts = __utils__["qmail_filter.split_key_file"](name)
        if parts:
            found[(parts[1], parts[0])] = os.path.join(keys_dir, name)
    return found


def keys(keys_dir=None):
    """
    The DKIM keys on this host: ``{domain: {selector: {file, algorithm,
    mode, owner}}}`` (no key material).

    CLI Example::

        salt '*' qmail_dkim.keys
    """
    keys_dir = _keys_dir(keys_dir)
    listing = {}
    for (domain, selector), path in sorted(_on_disk(keys_dir).items()):
        st = os.lstat(path)
        try:
            with open(path, "rb") as handle:
                algorithm = __utils__["qmail_filter_keys.load"](handle.read())[0]
        except (OSError, ValueError) as exc:
            algorithm = f"unreadable ({exc.__class__.__name__})"
        listing.setdefault(domain, {})[selector] = {
            "file": path, "algorithm": algorithm, "mode": f"{st.st_mode & 0o7777:04o}",
            "owner": _user_name(st.st_uid)}
    return listing


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def dns_record(domain, selector=None, keys_dir=None):
    """
    The DNS TXT records that publish ``domain``'s DKIM keys on this host:
    ``{"<selector>._domainkey.<domain>": "v=DKIM1; k=rsa; p=..."}``, one
    per selector still on the host (an old selector stays published until
    it is removed from the pillar), or only ``selector``'s.

    CLI Example::

        salt '*' qmail_dkim.dns_record example.org
        salt '*' qmail_dkim.dns_record example.org selector=s2026
    """
    keys_dir = _keys_dir(keys_dir)
    domain = _v("fqdn")(str(domain), "domain").lower()
    records = {}
    for (dom, sel), path in sorted(_on_disk(keys_dir).items()):
        if dom != domain or (selector is not None and sel != str(selector)):
            continue
        with open(path, "rb") as handle:
            records[f"{sel}._domainkey.{dom}"] = __utils__["qmail_filter_keys.record"](
                handle.read())
    if not records:
        raise SaltInvocationError(
            f"domain: no DKIM key for {domain}" + (f" with selector {selector}" if selector
                                                   else "") + f" in {keys_dir}")
    return records


def planned(name, keys, user=None):
    """
    What ``managed`` would do in key folder ``name`` for ``keys``
    (``{domain: {selector: PEM text or '' (make one)}}``): ``{make, replace,
    fix, remove}``, each a sorted list of key files (``fix``: owner or mode
    only), the keys owned by ``user`` (default: qmaild). Nothing is changed.

    CLI Example::

        salt '*' qmail_dkim.planned /etc/qmail-filter/dkim '{example.org: {s2026: ""}}' user=root
    """
    name = _v("path")(name, "name")
    keys = _keys(keys)
    uid = _uid(user)
    plan = {"make": [], "replace": [], "fix": [], "remove": []}
    wanted = {}
    for domain, selectors in (keys or {}).items():
        for selector, text in selectors.items():
            path = __utils__["qmail_filter.key_file"](name, domain.lower(), selector)
            wanted[path] = text
    for path in _on_disk(name).values():
        if path not in wanted:
            plan["remove"].append(path)
    for path, text in wanted.items():
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            plan["make"].append(path)
            continue
        data = _read(path)
        if text:
            if data != __utils__["qmail_filter_keys.check"](text, path)[1]:
                plan["replace"].append(path)
                continue
        elif data is None or not _loads(data):
            plan["replace"].append(path)
            continue
        if st.st_uid != uid or st.st_mode & 0o7777 != KEY_MODE or not os.path.isfile(path):
            plan["fix"].append(path)
    return {k: sorted(v) for k, v in plan.items()}


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _loads(data):
    try:
        __utils__["qmail_filter_keys.load"](data)
    except (ValueError, UnicodeDecodeError, TypeError):
        return False
    return True


def managed(name, keys, user=None):
    """
    Make key folder ``name`` hold exactly ``keys`` (see ``planned``): new
    keys are made here (RSA 2048) or written from the pillar's text, each
    atomically (a new file renamed over the old: the filter reads the old
    key or the new one, never a part), owner ``user``, mode 0400; keys of
    selectors no longer listed are removed. Returns what was done.

    CLI Example::

        salt '*' qmail_dkim.managed /etc/qmail-filter/dkim '{example.org: {s2026: ""}}' user=root
    """
    name = _v("path")(name, "name")
    keys = _keys(keys)
    plan = planned(name, keys, user)
    uid = _uid(user)
    os.makedirs(name, mode=DIR_MODE, exist_ok=True)
    os.chmod(name, DIR_MODE)
    texts = {}
    for domain, selectors in (keys or {}).items():
        for selector, text in selectors.items():
            texts[__utils__["qmail_filter.key_file"](name, domain.lower(), selector)] = text
    for path in plan["make"] + plan["replace"]:
        text = texts[path]
        data = (__utils__["qmail_filter_keys.check"](text, path)[1] if text
                else __utils__["qmail_filter_keys.generate"]("rsa"))
        __utils__["qmail_files.atomic_write"](path, data, mode=KEY_MODE, uid=uid, gid=0)
    for path in plan["fix"]:
        os.chown(path, uid, 0)
        os.chmod(path, KEY_MODE)
    for path in plan["remove"]:
        os.unlink(path)
    if plan["remove"]:
        __utils__["qmail_files.fsync_dir"](name)
    return plan
