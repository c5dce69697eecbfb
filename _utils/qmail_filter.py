"""
``qmail:filter`` (``__utils__``): check the chain's pillar and derive what
``qmail/filter/`` installs. Called once from ``qmail_settings.merge`` (the
schema's one owner) with its validators; every error names the full pillar
key.

The chain is the formula's own daemon (``files/default/filter/qmail-filterd``,
under qmail:service:supervisor) and its client ``qmail-filter``, which
qmail-smtpd runs through ``QMAILQUEUE`` instead of qmail-queue: notqmail
1.09 and netqmail 1.06 honour that variable, qmail-1.03 does not.
"""

import os

from salt.exceptions import SaltInvocationError

STEPS = ("dkim", "spf", "spamassassin")
DAEMON = "qmail-filterd"
# Where qmail-filterd can run (the boot script starts only qmail-send).
DAEMON_SUPERVISORS = ("systemd", "daemontools")
# The presets whose qmail-smtpd and qmail-inject run $QMAILQUEUE.
QMAILQUEUE_PRESETS = ("notqmail-1.09", "netqmail-1.06")
# Only notqmail 1.09's qmail.c reads a refusal's own text from fd 6 (exit 82).
CUSTOM_ERROR_PRESETS = ("notqmail-1.09",)
_SELECTOR_RE = r"[A-Za-z0-9][A-Za-z0-9-]{0,62}"
KEY_SUFFIX = ".key"


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def key_file(keys_dir, domain, selector):
    """``<keys_dir>/<selector>.<domain>.key``: a selector has no dot, so the
    name splits back into the two."""
    return os.path.join(keys_dir, f"{selector}.{domain}{KEY_SUFFIX}")


def split_key_file(name):
    """``(selector, domain)`` of a key file's name, None for other names."""
    if not name.endswith(KEY_SUFFIX) or name.startswith("."):
        return None
    selector, _, domain = name[:-len(KEY_SUFFIX)].partition(".")
    return (selector, domain) if selector and domain else None


def _check_lookup(lookup, v):
    key = "qmail:lookup:filter"
    lookup["dir"] = v("system_file")(lookup["dir"], f"{key}:dir")
    for name in ("python", "perl", "spamc", "socket"):
        lookup[name] = v("path")(lookup[name], f"{key}:{name}")
    for name, packages in lookup["packages"].items():
        where = f"{key}:packages:{name}"
        if name not in STEPS:
            v("fail")(where, "unknown step; known: " + ", ".join(STEPS))
        for i, package in enumerate(v("list_of")(packages, where)):
            v("deb_name")(package, f"{where}[{i}]")
    if lookup["spamd_service"] != "":
        v("service_name")(lookup["spamd_service"], f"{key}:spamd_service")


def _own_domains(settings):
    managed = settings["control_managed"]
    hosts = {settings["me"].lower()}
    for name in ("locals", "rcpthosts", "morercpthosts"):
        hosts.update(h.lower() for h in managed.get(name) or () if not h.startswith("#"))
    return hosts


def _check_dkim(dkim, settings, v, check_key, keys_dir):
    """{domain: {selector, algorithm, file}} for filter.json and
    {domain: {selector: key text or ''}} for qmail_dkim.keys_managed."""
    key = "qmail:filter:dkim"
    v("boolean")(dkim["required"], f"{key}:required")
    own = _own_domains(settings)
    signing, keys = {}, {}
    for domain, entry in v("mapping")(dkim["domains"], f"{key}:domains").items():
        where = f"{key}:domains:{domain}"
        v("fqdn")(domain, where)
        domain_l = domain.lower()
        if not v("covered_by")(domain_l, own):
            v("fail")(where, "not one of this spool's domains (me, locals, rcpthosts, "
                             "morercpthosts): it signs only for mail it is the home of")
        v("mapping")(entry, where)
        unknown = set(entry) - {"selector", "keys"}
        if unknown:
            v("fail")(f"{where}:{sorted(map(str, unknown))[0]}",
                      "unknown key; known keys: keys, selector")
        given = v("mapping")(entry.get("keys") or {}, f"{where}:keys")
        if not given:
            v("fail")(f"{where}:keys", "no selector: give at least one (its value: a "
                                       "private key, or empty to make one here)")
        algorithms = {}
        keys[domain_l] = {}
        for selector, text in given.items():
            at = f"{where}:keys:{selector}"
            v("matches")(str(selector), at, _SELECTOR_RE,
                         "a selector (letters, digits and '-'; no dots or spaces)")
            if text in (None, ""):
                algorithms[selector] = "rsa"
                keys[domain_l][selector] = ""
            else:
                algorithms[selector], _ = check_key(text, at)
                keys[domain_l][selector] = text.strip() + "\n"
        selector = entry.get("selector")
        if selector is None and len(given) == 1:
            selector = next(iter(given))
        if selector not in given:
            v("fail")(f"{where}:selector", f"{selector!r} is not one of its keys "
                                           f"({', '.join(map(str, given))}): name the one "
                                           "that signs")
        signing[domain_l] = {"selector": selector, "algorithm": algorithms[selector],
                             "file": key_file(keys_dir, domain_l, selector)}
    return signing, keys


def _sendmail_wrapper(settings, filt, wrapper):
    """With a chain, the host's sendmail is a wrapper that exports
    QMAILQUEUE (mail injected locally is signed too); both it and qmail's
    own sendmail are qmail's front ends either way (``also``): neither is
    ever taken for sendmail's binary, whichever is linked."""
    sendmail = settings["sendmail"]
    qmail_own = sendmail["frontend"]
    filt["sendmail"] = {}
    if filt["active"]:
        filt["sendmail"] = {"path": wrapper, "sendmail": qmail_own,
                            "qmailqueue": filt["qmailqueue"]}
        sendmail["frontend"] = wrapper
    sendmail["also"] = [f for f in (qmail_own, wrapper) if f != sendmail["frontend"]]


def derive(settings, v, check_key):
    """Check ``settings["filter"]`` (and ``lookup:filter``) and add what the
    SLS files need: ``active``, ``files``, ``config`` (filter.json),
    ``dkim_keys``, ``packages``, ``spamd``."""
    filt = settings["filter"]
    lookup = settings["lookup"]["filter"]
    _check_lookup(lookup, v)
    key = "qmail:filter"
    steps = v("list_of")(filt["steps"], f"{key}:steps")
    for i, name in enumerate(steps):
        v("one_of")(name, STEPS, f"{key}:steps[{i}]")
        if name in steps[:i]:
            v("fail")(f"{key}:steps[{i}]", f"{name} is in the chain already")
    filt["timeout"] = v("integer")(filt["timeout"], f"{key}:timeout", 1, 600)
    preset = settings["build_source"]["preset"]
    if steps and preset not in QMAILQUEUE_PRESETS:
        v("fail")(f"{key}:steps", f"qmail:source:preset {preset} does not run QMAILQUEUE "
                                  "(notqmail-1.09 and netqmail-1.06 do): the chain cannot "
                                  "be installed; take one of those or no steps")
    if steps and settings["service"]["supervisor"] not in DAEMON_SUPERVISORS:
        v("fail")(f"{key}:steps", "the chain runs as a daemon (qmail-filterd) that needs "
                                  "qmail:service:supervisor systemd or daemontools, not "
                                  f"{settings['service']['supervisor']}")
    if steps and settings["role"] != "spool":
        v("fail")(f"{key}:steps", "a client hands all its mail to the spool, which runs the "
                                  "chain (and signs): no steps on a client")
    directory = lookup["dir"]
    keys_dir = os.path.join(directory, "dkim")
    signing, keys = _check_dkim(filt["dkim"], settings, v, check_key, keys_dir)
    if "dkim" in steps and not signing:
        v("fail")(f"{key}:dkim:domains", "the dkim step needs at least one signing domain")
    spf = filt["spf"]
    v("boolean")(spf["required"], f"{key}:spf:required")
    v("boolean")(spf["reject_fail"], f"{key}:spf:reject_fail")
    spam = filt["spamassassin"]
    v("boolean")(spam["required"], f"{key}:spamassassin:required")
    spam["reject_score"] = v("integer")(spam["reject_score"],
                                        f"{key}:spamassassin:reject_score", 0, 1000)
    spam["max_size"] = v("integer")(spam["max_size"], f"{key}:spamassassin:max_size",
                                    1024, 256 * 1024 * 1024)
    if spam["user"] != "":
        v("account")(spam["user"], f"{key}:spamassassin:user")
    home = settings["lookup"]["home"]
    per_step = {
        "dkim": {"required": filt["dkim"]["required"], "domains": signing},
        "spf": {"required": spf["required"], "reject_fail": spf["reject_fail"]},
        "spamassassin": {"required": spam["required"], "reject_score": spam["reject_score"],
                         "max_size": spam["max_size"], "user": spam["user"],
                         "spamc": lookup["spamc"], "host": "127.0.0.1", "port": 783},
    }
    filt["active"] = bool(steps)
    filt["files"] = {"dir": directory, "keys": keys_dir,
                     "program": os.path.join(directory, "qmail-filter"),
                     "daemon": os.path.join(directory, DAEMON),
                     "client_conf": os.path.join(directory, "qmail-filter.conf"),
                     "sendmail": os.path.join(directory, "sendmail"),
                     "config": os.path.join(directory, "filter.json")}
    filt["config"] = {
        "qmail_queue": os.path.join(home, "bin", "qmail-queue"),
        "custom_errors": preset in CUSTOM_ERROR_PRESETS,
        "steps": [dict(per_step[name], name=name, timeout=filt["timeout"]) for name in steps],
    }
    # The client's settings (qmail-filter.conf): it waits for the whole
    # chain, each step at most `timeout`, and some more.
    filt["client_conf"] = "".join(f"{name}={value}\n" for name, value in (
        ("socket", lookup["socket"]), ("qmail_queue", filt["config"]["qmail_queue"]),
        ("custom_errors", int(filt["config"]["custom_errors"])),
        ("timeout", filt["timeout"] * max(len(steps), 1) + 30)))
    filt["daemon"] = {"name": DAEMON, "socket": lookup["socket"],
                      "socket_dir": os.path.dirname(lookup["socket"]),
                      "socket_name": os.path.basename(lookup["socket"]),
                      "user": settings["lookup"]["users"]["qmaild"]}
    filt["dkim_keys"] = keys if "dkim" in steps else {}
    if not steps:  # a chain taken away: its daemon runs no more
        settings["service"]["smtpd_stopped"].append(DAEMON)
    filt["packages"] = sorted({p for name in steps for p in lookup["packages"].get(name, [])})
    filt["spamd"] = lookup["spamd_service"] if "spamassassin" in steps else ""
    # What qmail-smtpd's wrapper exports (empty: qmail-queue as always).
    filt["qmailqueue"] = filt["files"]["program"] if steps else ""
    _sendmail_wrapper(settings, filt, filt["files"]["sendmail"])
    return filt
