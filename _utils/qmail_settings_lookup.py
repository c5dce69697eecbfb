"""
The settings of ``qmail:lookup`` (where things are on this OS: the qmail
home, the accounts, sendmail's places, the services' folders) and of
``qmail:tofs``, checked for ``qmail_settings.merge`` (``__utils__``).

The loader gives ``_utils`` modules no ``__utils__``: ``qmail_settings``
passes ``v``, the getter of the shared validators
(``_utils/qmail_validate.py``), and whatever else a check needs.
"""

import os

from salt.exceptions import SaltInvocationError

# INSTALL.ids: user -> (primary group key, home below the qmail home).
ACCOUNTS = {
    "alias": ("nofiles", "alias"),
    "qmaild": ("nofiles", ""),
    "qmaill": ("nofiles", ""),
    "qmailp": ("nofiles", ""),
    "qmailq": ("qmail", ""),
    "qmailr": ("qmail", ""),
    "qmails": ("qmail", ""),
}
GROUPS = ("qmail", "nofiles")
# The file states whose sources qmail:tofs:source_files may replace (the
# keys the SLS files give qmail_tofs.contents and qmail_tofs.files_switch).
TOFS_KEYS = ("rc", "send-run", "qmail-send.service", "qmail-svscan.service", "log-run",
             "smtpd", "tcp.smtp", "smtpd-run", "qmail-smtpd.service", "submission",
             "authenticated", "qmail-filter", "qmail-filterd", "qmail-filterd.service",
             "filterd-run", "sendmail-wrapper")
_ALT_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_PROGRAM_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"  # a file in <home>/bin


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def _check_alternative(v, alt, key):
    v("mapping")(alt, key)
    for name in ("name", "link", "priority"):
        if name not in alt:
            _fail(key, f"{name} is missing")
    unknown = set(alt) - {"name", "link", "priority", "slaves"}
    if unknown:
        _fail(key, f"unknown key {sorted(map(str, unknown))[0]!r}")
    v("matches")(alt["name"], f"{key}:name", _ALT_NAME_RE, "an alternatives group name")
    link = v("system_file")(alt["link"], f"{key}:link")
    prio = v("integer")(alt["priority"], f"{key}:priority", 0)
    slaves = alt.get("slaves")
    slaves = [] if slaves is None else v("list_of")(slaves, f"{key}:slaves")
    checked = []
    for i, slave in enumerate(slaves):
        where = f"{key}:slaves[{i}]"
        if not isinstance(slave, dict) or set(slave) != {"name", "link", "program"}:
            _fail(where, "expected name, link and program")
        checked.append({
            "name": v("matches")(slave["name"], f"{where}:name", _ALT_NAME_RE,
                                  "an alternatives name"),
            "link": v("system_file")(slave["link"], f"{where}:link"),
            "program": v("matches")(slave["program"], f"{where}:program", _PROGRAM_RE,
                                     "a qmail program name"),
        })
    return {"name": alt["name"], "link": link, "priority": prio, "slaves": checked}


def check_lookup(v, lookup, boot_methods):
    key = "qmail:lookup"
    lookup["home"] = v("own_dir")(lookup["home"], f"{key}:home")
    v("account")(lookup["rootgroup"], f"{key}:rootgroup")
    lookup["nologin_shell"] = v("path")(lookup["nologin_shell"], f"{key}:nologin_shell")
    # Accounts.
    for kind, known in (("users", ACCOUNTS), ("groups", GROUPS)):
        for name in lookup[kind]:
            if name not in known:
                _fail(f"{key}:{kind}:{name}", "unknown account; known: " + ", ".join(known))
        for name in known:
            v("account")(lookup[kind].get(name), f"{key}:{kind}:{name}")
    if lookup["groups"]["nofiles"] in ("nogroup", "nobody"):
        _fail(f"{key}:groups:nofiles",
              "must not be nogroup or nobody (INSTALL.ids: it must own no files)")
    for kind, known in (("uids", ACCOUNTS), ("gids", GROUPS)):
        for name, number in lookup[kind].items():
            where = f"{key}:{kind}:{name}"
            if name not in known:
                _fail(where, "unknown account; known: " + ", ".join(known))
            lookup[kind][name] = v("integer")(number, where, 1, 2**31 - 2)
    # sendmail.
    if not lookup["sendmail_paths"]:
        _fail(f"{key}:sendmail_paths", "list where this OS keeps sendmail (at least one path)")
    for name in ("sendmail_paths", "sendmail_links"):
        lookup[name] = [v("system_file")(p, f"{key}:{name}[{i}]")
                        for i, p in enumerate(lookup[name])]
    v("one_of")(lookup["sendmail_boot"], boot_methods, f"{key}:sendmail_boot")
    for i, service in enumerate(lookup["sendmail_services"]):
        v("service_name")(service, f"{key}:sendmail_services[{i}]")
    lookup["sendmail_ports"] = [v("integer")(p, f"{key}:sendmail_ports[{i}]", 1, 65535)
                                for i, p in enumerate(lookup["sendmail_ports"])]
    for name in ("sendmail_rc_conf", "sendmail_sysconfig", "sendmail_irix_config"):
        lookup[name] = v("system_file")(lookup[name], f"{key}:{name}")
    if lookup["sendmail_mailer_conf"] != "":
        lookup["sendmail_mailer_conf"] = v("system_file")(
            lookup["sendmail_mailer_conf"], f"{key}:sendmail_mailer_conf")
    if lookup["sendmail_mta_package"] != "":
        v("deb_name")(lookup["sendmail_mta_package"], f"{key}:sendmail_mta_package")
    lookup["sendmail_alternatives"] = [
        _check_alternative(v, alt, f"{key}:sendmail_alternatives[{i}]")
        for i, alt in enumerate(lookup["sendmail_alternatives"])]
    # The undo journal's folder is the formula's own: the dummy package is built there.
    journal = v("path")(lookup["sendmail_journal"], f"{key}:sendmail_journal")
    v("own_dir")(os.path.dirname(journal), f"{key}:sendmail_journal")
    if os.path.isdir(journal):
        _fail(f"{key}:sendmail_journal", f"{journal} is a folder, not a file")
    lookup["sendmail_journal"] = journal
    # sendmail's queue folders: the hand-over empties them, message by message.
    lookup["sendmail_queues"] = v("each")(lookup["sendmail_queues"],
                                           f"{key}:sendmail_queues", "system_file")
    # qmail.service.
    service = lookup["service"]
    for name in ("ucspi_bin", "daemontools_bin"):
        service[name] = v("path")(service[name], f"{key}:service:{name}")
    for name in ("unit_dir", "service_dir", "tcp_rules", "inetd_conf", "boot_script",
                 "tls_dir", "log_dir"):
        service[name] = v("system_file")(service[name], f"{key}:service:{name}")
    service["tlswrapper_bin"] = v("path")(service["tlswrapper_bin"],
                                           f"{key}:service:tlswrapper_bin")
    for name in ("tls_package", "ipv6_package"):
        if service[name] != "":
            v("deb_name")(service[name], f"{key}:service:{name}")
    service["ipv6_replaces"] = v("each")(service["ipv6_replaces"],
                                         f"{key}:service:ipv6_replaces", "deb_name")
    v("string")(service["tlswrapper_missing"], f"{key}:service:tlswrapper_missing",
                empty_ok=True, max_length=200)


def check_tofs(v, tofs):
    """The shared syntax, then: a source_files key names a file state of the
    formula (a misspelt one would be ignored silently), and gives at least
    one file (none would leave the state without a source)."""
    v("tofs")(tofs, "qmail:tofs")
    for name, files in tofs["source_files"].items():
        where = f"qmail:tofs:source_files:{name}"
        if name not in TOFS_KEYS:
            _fail(where, "unknown file key; known: " + ", ".join(TOFS_KEYS))
        if not files:
            _fail(where, "empty: give at least one file name, or null for the formula's")


def accounts(lookup):
    """The groups and users of INSTALL.ids, each with its key, name and
    (given) id; users with their primary group and home."""
    home = lookup["home"]
    groups = [{"key": k, "name": lookup["groups"][k], "gid": lookup["gids"].get(k)}
              for k in GROUPS]
    users = [
        {
            "key": k,
            "name": lookup["users"][k],
            "group": lookup["groups"][group],
            "group_key": group,
            "home": os.path.join(home, sub) if sub else home,
            "uid": lookup["uids"].get(k),
        }
        for k, (group, sub) in ACCOUNTS.items()
    ]
    return groups, users
