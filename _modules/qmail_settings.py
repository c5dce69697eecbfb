"""
The formula's settings: merge parameters and pillar, check every key, and
derive what the states need (e.g. the control files of the host's role).

This module is the one owner of the ``qmail`` pillar's schema: types,
bounds, path policy, host names, network lists and text are checked here,
through the validators of ``_utils/qmail_validate.py`` that the execution
functions called from the command line share. ``qmail/map.jinja`` calls
``qmail_settings.merge`` while rendering, so a bad pillar value stops the
whole run before the first state changes anything, with an error that
starts with the full pillar key.

``null`` in the pillar means "the default" for every key, except the
entries of ``qmail:control`` and ``qmail:aliases``, where it removes the
file.
"""

import functools
import logging
import os
import shlex

import salt.utils.data
import salt.utils.dictupdate
from salt.exceptions import SaltInvocationError

try:  # Salt >= 3008 masks pillar values in output; the formula needs them plain.
    from salt.utils.secret import expose as _plain
except ImportError:  # pragma: no cover - older Salt has no masking

    def _plain(value):
        return value

log = logging.getLogger(__name__)

__virtualname__ = "qmail_settings"

ROLES = ("spool", "client")
BOOT_METHODS = ("systemd", "sysv", "chkconfig", "rcconf", "sysconfig", "irix")
SUPERVISORS = ("systemd", "daemontools", "bootscript")
SMTPD_MODES = ("tcpserver", "inetd")
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
# What the formula's install puts into the qmail home besides queue/,
# control/, users/ and alias/ (whose contents belong to the mail system).
INSTALLED_DIRS = ("bin", "boot", "doc", "man")
RECORD_NAME = ".qmail-build.json"
# Keys whose entries may be null: null there removes a file.
NULL_REMOVES = ("qmail:control", "qmail:aliases")
# Keys that were renamed: an old pillar that still sets one (even to null)
# is refused with the new name, rather than silently losing its value.
RENAMED = {"qmail:lookup:sendmail_record": "qmail:lookup:sendmail_journal"}
# The file states whose sources qmail:tofs:source_files may replace (the
# keys the SLS files give qmail_tofs.files_switch).
TOFS_KEYS = ("rc", "send-run", "qmail-send.service", "qmail-svscan.service", "log-run",
             "smtpd", "tcp.smtp", "smtpd-run", "qmail-smtpd.service", "qmail-filter")
# A compiler or linker command: words of flags and paths, no shell syntax.
_CC_RE = r"[A-Za-z0-9 ._+=/,:-]{1,200}"
_ALIAS_NAME_RE = r"[a-z0-9][a-z0-9._-]{0,63}"
_ALT_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_PROGRAM_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"  # a file in <home>/bin
_ADDRESS_RE = r"[A-Za-z0-9!#$%'*+/=?^_`{|}~.-]+(@[A-Za-z0-9.-]+)?"


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


# --------------------------------------------------------------------------
# Shape: nulls, unknown keys, types
# --------------------------------------------------------------------------
def _merge(base, update):
    """Merge ``update`` into a copy of ``base``: mappings deeply, the rest
    (lists too) replaced, as template-formula's map does."""
    return salt.utils.dictupdate.merge(base, update, strategy="recurse", merge_lists=False)


def _drop_nulls(value, key):
    """A copy of pillar ``value`` without null entries (null = the default),
    but where null removes a file."""
    if not isinstance(value, dict):
        return value
    return {
        name: _drop_nulls(item, f"{key}:{name}")
        for name, item in value.items()
        if item is not None or key in NULL_REMOVES
    }


def _check_renamed(pillar):
    """Refuse every key of RENAMED that ``pillar`` (the ``qmail`` pillar) sets."""
    for old, new in RENAMED.items():
        value = {"qmail": pillar}
        for name in old.split(":"):
            if not isinstance(value, dict) or name not in value:
                break
            value = value[name]
        else:
            _fail(old, f"renamed: it is now {new} (same meaning, same file)")


def _check_shape(default, given, key):
    """
    Check ``given`` (pillar) against the shape of ``default``: no unknown keys
    where the defaults fix the keys, and the same type for every value. An
    empty mapping in the defaults accepts any keys: those are checked by
    their own validators.
    """
    type_name = _v("type_name")
    if given is None:  # left by _drop_nulls only where null removes a file
        return
    if isinstance(default, dict):
        if not isinstance(given, dict):
            _fail(key, f"expected a mapping, got {type_name(given)} {given!r}")
        if not default:
            return
        for name, value in given.items():
            where = f"{key}:{name}"
            if name not in default:
                _fail(where, "unknown key; known keys: " + ", ".join(sorted(default)))
            _check_shape(default[name], value, where)
        return
    if isinstance(default, bool) or isinstance(given, bool):
        if isinstance(default, bool) != isinstance(given, bool):
            _fail(key, f"expected {type_name(default)}, got {given!r}")
        return
    if not isinstance(given, type(default)):
        _fail(key, f"expected {type_name(default)}, got {type_name(given)} {given!r}")


# --------------------------------------------------------------------------
# lookup
# --------------------------------------------------------------------------
def _check_alternative(alt, key):
    _v("mapping")(alt, key)
    for name in ("name", "link", "priority"):
        if name not in alt:
            _fail(key, f"{name} is missing")
    unknown = set(alt) - {"name", "link", "priority", "slaves"}
    if unknown:
        _fail(key, f"unknown key {sorted(map(str, unknown))[0]!r}")
    _v("matches")(alt["name"], f"{key}:name", _ALT_NAME_RE, "an alternatives group name")
    link = _v("system_file")(alt["link"], f"{key}:link")
    prio = _v("integer")(alt["priority"], f"{key}:priority", 0)
    slaves = alt.get("slaves")
    slaves = [] if slaves is None else _v("list_of")(slaves, f"{key}:slaves")
    checked = []
    for i, slave in enumerate(slaves):
        where = f"{key}:slaves[{i}]"
        if not isinstance(slave, dict) or set(slave) != {"name", "link", "program"}:
            _fail(where, "expected name, link and program")
        checked.append({
            "name": _v("matches")(slave["name"], f"{where}:name", _ALT_NAME_RE,
                                  "an alternatives name"),
            "link": _v("system_file")(slave["link"], f"{where}:link"),
            "program": _v("matches")(slave["program"], f"{where}:program", _PROGRAM_RE,
                                     "a qmail program name"),
        })
    return {"name": alt["name"], "link": link, "priority": prio, "slaves": checked}


def _check_lookup(lookup):
    key = "qmail:lookup"
    lookup["home"] = _v("own_dir")(lookup["home"], f"{key}:home")
    _v("account")(lookup["rootgroup"], f"{key}:rootgroup")
    lookup["nologin_shell"] = _v("path")(lookup["nologin_shell"], f"{key}:nologin_shell")
    # Accounts.
    for kind, known in (("users", ACCOUNTS), ("groups", GROUPS)):
        for name in lookup[kind]:
            if name not in known:
                _fail(f"{key}:{kind}:{name}", "unknown account; known: " + ", ".join(known))
        for name in known:
            _v("account")(lookup[kind].get(name), f"{key}:{kind}:{name}")
    if lookup["groups"]["nofiles"] in ("nogroup", "nobody"):
        _fail(f"{key}:groups:nofiles",
              "must not be nogroup or nobody (INSTALL.ids: it must own no files)")
    for kind, known in (("uids", ACCOUNTS), ("gids", GROUPS)):
        for name, number in lookup[kind].items():
            where = f"{key}:{kind}:{name}"
            if name not in known:
                _fail(where, "unknown account; known: " + ", ".join(known))
            lookup[kind][name] = _v("integer")(number, where, 1, 2**31 - 2)
    # sendmail.
    if not lookup["sendmail_paths"]:
        _fail(f"{key}:sendmail_paths", "list where this OS keeps sendmail (at least one path)")
    for name in ("sendmail_paths", "sendmail_links"):
        lookup[name] = [_v("system_file")(p, f"{key}:{name}[{i}]")
                        for i, p in enumerate(lookup[name])]
    _v("one_of")(lookup["sendmail_boot"], BOOT_METHODS, f"{key}:sendmail_boot")
    for i, service in enumerate(lookup["sendmail_services"]):
        _v("service_name")(service, f"{key}:sendmail_services[{i}]")
    lookup["sendmail_ports"] = [_v("integer")(p, f"{key}:sendmail_ports[{i}]", 1, 65535)
                                for i, p in enumerate(lookup["sendmail_ports"])]
    for name in ("sendmail_rc_conf", "sendmail_sysconfig", "sendmail_irix_config"):
        lookup[name] = _v("system_file")(lookup[name], f"{key}:{name}")
    if lookup["sendmail_mailer_conf"] != "":
        lookup["sendmail_mailer_conf"] = _v("system_file")(
            lookup["sendmail_mailer_conf"], f"{key}:sendmail_mailer_conf")
    if lookup["sendmail_mta_package"] != "":
        _v("deb_name")(lookup["sendmail_mta_package"], f"{key}:sendmail_mta_package")
    lookup["sendmail_alternatives"] = [
        _check_alternative(alt, f"{key}:sendmail_alternatives[{i}]")
        for i, alt in enumerate(lookup["sendmail_alternatives"])]
    # The undo journal's folder is the formula's own: the dummy package is built there.
    journal = _v("path")(lookup["sendmail_journal"], f"{key}:sendmail_journal")
    _v("own_dir")(os.path.dirname(journal), f"{key}:sendmail_journal")
    if os.path.isdir(journal):
        _fail(f"{key}:sendmail_journal", f"{journal} is a folder, not a file")
    lookup["sendmail_journal"] = journal
    # sendmail's queue folders: the hand-over empties them, message by message.
    lookup["sendmail_queues"] = _v("each")(lookup["sendmail_queues"],
                                           f"{key}:sendmail_queues", "system_file")
    # qmail.service.
    service = lookup["service"]
    for name in ("ucspi_bin", "daemontools_bin"):
        service[name] = _v("path")(service[name], f"{key}:service:{name}")
    for name in ("unit_dir", "service_dir", "tcp_rules", "inetd_conf", "boot_script",
                 "tls_dir", "log_dir"):
        service[name] = _v("system_file")(service[name], f"{key}:service:{name}")
    service["tlswrapper_bin"] = _v("path")(service["tlswrapper_bin"],
                                           f"{key}:service:tlswrapper_bin")
    if service["tls_package"] != "":
        _v("deb_name")(service["tls_package"], f"{key}:service:tls_package")


# --------------------------------------------------------------------------
# tofs
# --------------------------------------------------------------------------
def _check_tofs(tofs):
    """The shared syntax, then: a source_files key names a file state of the
    formula (a misspelt one would be ignored silently), and gives at least
    one file (none would leave the state without a source)."""
    _v("tofs")(tofs, "qmail:tofs")
    for name, files in tofs["source_files"].items():
        where = f"qmail:tofs:source_files:{name}"
        if name not in TOFS_KEYS:
            _fail(where, "unknown file key; known: " + ", ".join(TOFS_KEYS))
        if not files:
            _fail(where, "empty: give at least one file name, or null for the formula's")


# --------------------------------------------------------------------------
# Role, names and control files
# --------------------------------------------------------------------------
def _me(settings):
    if settings["me"] != "":
        return _v("fqdn")(settings["me"], "qmail:me")
    for grain in ("fqdn", "id"):
        name = __grains__.get(grain)
        if _v("is_host")(name) and "." in name and not name.split(".")[-1].isdigit():
            return name
    _fail("qmail:me", f"the minion's fqdn grain {__grains__.get('fqdn')!r} is no fully "
                      "qualified host name; set qmail:me")
    return None


def _check_control_places(settings):
    """A folder (or other non-file) where a control file belongs fails now,
    before any file is written."""
    directory = os.path.join(settings["lookup"]["home"], "control")
    for name in sorted(settings["control_managed"]) + settings["control_absent"]:
        path = os.path.join(directory, name)
        if os.path.lexists(path) and not (os.path.islink(path) or os.path.isfile(path)):
            _fail(f"qmail:control:{name}",
                  f"{path} is a folder or special file, not a control file; move it away")


def _derive_control(settings):
    _v("one_of")(settings["role"], ROLES, "qmail:role")
    settings["me"] = _me(settings)
    if settings["spool"] != "" or settings["role"] == "client":
        if settings["spool"] == "":
            _fail("qmail:spool", "the client role needs the spool host's name")
        _v("mail_host")(settings["spool"], "qmail:spool")
    files = __salt__["qmail_control.derive"](
        settings["role"], settings["me"], settings["spool"] or None,
        settings["control"], key="qmail",
    )
    settings["control_managed"] = {n: v for n, v in files.items() if v is not None}
    settings["control_absent"] = sorted(n for n, v in files.items() if v is None)
    _check_control_places(settings)
    # Which of these files' changes qmail must be told of, and how: the
    # service states watch the control states named here.
    reload = {"hup": [], "restart": [], "newmrh": []}
    for name in sorted(files):
        action = __salt__["qmail_control.reload_action"](name)
        if action:
            reload[action].append(name)
    settings["control_reload"] = reload
    _check_percenthack(settings)


# --------------------------------------------------------------------------
# Relaying: what qmail-send's percent hack would open
# --------------------------------------------------------------------------
def _accepted_hosts(managed):
    """rcpthosts and morercpthosts entries (lower case) -> the file naming
    them: the domains qmail-smtpd takes mail for from anyone."""
    accepted = {}
    for name in ("morercpthosts", "rcpthosts"):  # rcpthosts named first when in both
        for entry in managed.get(name) or ():
            if not entry.startswith("#"):
                accepted[entry.lower()] = name
    return accepted


def _check_percenthack(settings):
    """
    percenthack makes qmail-send turn ``x%victim.example@domain`` into
    ``x@victim.example`` for each ``domain`` listed. A domain qmail-smtpd
    accepts from anyone (rcpthosts, morercpthosts, one of their wildcards)
    or that is this host's own (me, locals) would take that address from
    anyone and send it on: an open relay. Such entries are refused.
    """
    given = settings["control"].get("percenthack")
    if not given:
        return
    managed = settings["control_managed"]
    accepted = _accepted_hosts(managed)
    local = {h.lower() for h in managed.get("locals") or ()} | {settings["me"].lower()}
    relay = "x%victim.example@{} would be accepted from anyone and relayed (open relay)"
    for i, entry in enumerate(given if isinstance(given, list) else [given]):
        domain = entry.strip(" \t")
        if domain.startswith("#"):
            continue
        where = f"qmail:control:percenthack[{i}]"
        hit = _v("covered_by")(domain, accepted)
        if hit == domain.lower():
            _fail(where, f"{domain!r} is in {accepted[hit]}: " + relay.format(domain))
        if hit:
            _fail(where, f"{domain!r} is covered by {accepted[hit]}'s {hit!r}: "
                         + relay.format(domain))
        if domain.lower() in local:
            _fail(where, f"{domain!r} is this host's own (me or locals): "
                         + relay.format(domain))


# --------------------------------------------------------------------------
# source, build, aliases, delivery: qmail.users, qmail.build, qmail.aliases
# --------------------------------------------------------------------------
def _check_source(source):
    presets = __salt__["qmail_build.presets"]()
    name = _v("one_of")(source["preset"], tuple(presets), "qmail:source:preset")
    preset = presets[name]
    url = source["url"]
    # A file:// URL becomes its path: one canonical form for the record.
    url = preset["url"] if url == "" else _v("source_url")(url, "qmail:source:url")
    if url != preset["url"] and source["hash"] == "":
        _fail("qmail:source:hash", "required: a source other than the preset's needs its hash")
    if source["hash"] != "":
        _v("string")(source["hash"], "qmail:source:hash")
    algo, digest = __salt__["qmail_build.parse_hash"](source["hash"] or preset["hash"])
    return {
        "preset": name,
        "url": url,
        "hash": f"{algo}={digest}",
        "runtime_ids": preset["runtime_ids"],
        "errno_fix": preset["errno_fix"],
        "alloc_fix": preset.get("alloc_fix", False),
        "implicit_fix": preset.get("implicit_fix", False),
    }


def _check_build(build, home):
    conf = build["conf"]
    key = "qmail:build:conf"
    for name in ("cc", "ld"):
        _v("matches")(conf[name], f"{key}:{name}", _CC_RE,
                      "a command of words (letters, digits, space and . _ + = / , : -)")
    conf["spawn"] = _v("integer")(conf["spawn"], f"{key}:spawn", 1, 255)
    conf["split"] = _v("integer")(conf["split"], f"{key}:split", 1, 1000)
    _v("matches")(conf["patrn"], f"{key}:patrn", "[0-7]{3}", "three octal digits")
    _v("matches")(conf["break"], f"{key}:break", "[!-.0-~]", "one printable character but /")
    # qmail.build.clean deletes the workdir: it must be a folder of its own.
    workdir = _v("own_dir")(build["workdir"], "qmail:build:workdir")
    inside = _v("inside")
    if inside(workdir, home) or inside(home, workdir):
        _fail("qmail:build:workdir",
              f"{workdir!r} and the qmail home {home!r} must not hold one another")
    build["workdir"] = workdir
    share = build["share"]
    if share["builder"] != "":
        _v("minion_id")(share["builder"], "qmail:build:share:builder")
    share["wait"] = _v("integer")(share["wait"], "qmail:build:share:wait", 0, 86400)


def _alias_line(line, where, alias_home):
    """One delivery of a ~alias/.qmail file, kept inside the alias home."""
    _v("string")(line, where, max_length=1000)
    line = line.strip()
    if line.startswith(("#", "|")):
        return line, None
    if line.startswith("&"):
        _v("matches")(line[1:], where, _ADDRESS_RE, "an address after &")
        return line, None
    if _v("is_file_delivery")(line):
        _v("file_delivery")(line, where, f"the alias home {alias_home}")
        full = _v("path")(os.path.join(alias_home, line), where)
        return line, (full if line.endswith("/") else None)
    _v("matches")(line, where, _ADDRESS_RE,
                  "a .qmail delivery (./Maildir/, ./Mailbox, &address, |command)")
    return line, None


def _check_aliases(aliases, home):
    alias_home = os.path.join(home, "alias")
    files, maildirs = {}, set()
    for name, lines in aliases.items():
        where = f"qmail:aliases:{name}"
        if not isinstance(name, str):
            _fail(where, "not an alias name")
        _v("matches")(name, where, _ALIAS_NAME_RE,
                      "an alias name (lower case letters, digits, . _ -)")
        if lines is None:
            files[name] = None
            continue
        _v("list_of")(lines, where)
        if not lines:
            _fail(where, "empty: give at least one delivery line, or null to remove the file")
        files[name] = []
        for i, line in enumerate(lines):
            line, maildir = _alias_line(line, f"{where}[{i}]", alias_home)
            files[name].append(line)
            if maildir:
                maildirs.add(maildir)
    return files, sorted(maildirs)


def _check_delivery(delivery):
    key = "qmail:delivery"
    line = _v("string")(delivery, key, max_length=1000).strip()
    # The first character decides, as in qmail-local: "/etc/cron.d/x@" is a
    # file, "|cmd a@b" a command.
    if _v("is_file_delivery")(line):
        _v("file_delivery")(line, key)
    elif line.startswith("|"):
        pass
    elif line.startswith("&") or "@" in line:
        _v("matches")(line.removeprefix("&"), key, _ADDRESS_RE, "an address to forward to")
    else:
        _fail(key, f"{line!r} is not a .qmail delivery (./Maildir/, ./Mailbox, |command, "
                   "&address)")
    return shlex.quote(line)


def _build_settings(settings):
    lookup = settings["lookup"]
    home = lookup["home"]
    settings["build_source"] = _check_source(settings["source"])
    build = settings["build"]
    _check_build(build, home)
    if build["share"]["builder"] and not settings["build_source"]["runtime_ids"]:
        _fail("qmail:build:share:builder",
              f"{settings['build_source']['preset']} bakes account ids into its binaries: "
              "its builds cannot be shared; leave builder empty")
    settings["build_conf"] = __salt__["qmail_build.conf_files"](
        home, lookup["users"], lookup["groups"], build["conf"])
    settings["build_remove"] = [os.path.join(home, d) for d in INSTALLED_DIRS] + [
        os.path.join(home, "rc"), os.path.join(home, RECORD_NAME), build["workdir"],
    ]
    settings["accounts_groups"] = [
        {"key": k, "name": lookup["groups"][k], "gid": lookup["gids"].get(k)} for k in GROUPS
    ]
    settings["accounts_users"] = [
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
    settings["aliases_files"], settings["aliases_maildirs"] = _check_aliases(
        settings["aliases"], home)
    settings["delivery_arg"] = _check_delivery(settings["delivery"])


# --------------------------------------------------------------------------
# sendmail: qmail.sendmail
# --------------------------------------------------------------------------
def _sendmail_settings(settings):
    lookup = settings["lookup"]
    boot = lookup["sendmail_boot"]
    home = lookup["home"]
    state_dir = os.path.dirname(lookup["sendmail_journal"])
    package = lookup["sendmail_mta_package"]
    alternatives = lookup["sendmail_alternatives"]
    settings["sendmail"] = {
        "frontend": os.path.join(home, "bin", "sendmail"),
        "qread": os.path.join(home, "bin", "qmail-qread"),
        "journal": lookup["sendmail_journal"],
        "mailer_conf": [lookup["sendmail_mailer_conf"]] if lookup["sendmail_mailer_conf"] else [],
        "boot_path": {"rcconf": lookup["sendmail_rc_conf"],
                      "sysconfig": lookup["sendmail_sysconfig"],
                      "irix": lookup["sendmail_irix_config"]}.get(boot),
        "alternatives": [
            dict(a, slaves=[dict(s, target=os.path.join(home, "bin", s["program"]))
                            for s in a["slaves"]])
            for a in alternatives
        ],
        # Links that the alternatives steps point to qmail's sendmail.
        "alternative_links": [a["link"] for a in alternatives] + [
            s["link"] for a in alternatives for s in a["slaves"] if s["program"] == "sendmail"],
        # One hand-over of sendmail's queue at a time (beside the journal).
        "mqueue_lock": os.path.join(state_dir, "mqueue.lock"),
        "mta_package": [{
            "name": package,
            "dir": os.path.join(state_dir, package),
            "deb": os.path.join(state_dir, f"{package}.deb"),
        }] if package else [],
    }


# --------------------------------------------------------------------------
# service: qmail.service
# --------------------------------------------------------------------------
def _service_settings(settings):
    service = settings["service"]
    _v("one_of")(service["supervisor"], SUPERVISORS, "qmail:service:supervisor")
    _v("one_of")(service["smtpd"], SMTPD_MODES, "qmail:service:smtpd")
    service["smtpd_port"] = _v("integer")(service["smtpd_port"], "qmail:service:smtpd_port",
                                          1, 65535)
    service["smtpd_concurrency"] = _v("integer")(
        service["smtpd_concurrency"], "qmail:service:smtpd_concurrency", 1, 10000)
    rules = __salt__["qmail_service.tcp_rules"](settings["relay_clients"])
    if service["smtpd"] == "inetd" and settings["relay_clients"]:
        _fail("qmail:relay_clients", "inetd gives qmail-smtpd no per-client rules; "
                                     "relaying needs qmail:service:smtpd: tcpserver")
    service["smtpd_mode"] = service["smtpd"] if settings["role"] == "spool" else "off"
    if service["smtpd_mode"] == "tcpserver" and service["supervisor"] == "bootscript":
        _fail("qmail:service:smtpd",
              "tcpserver needs a supervisor (systemd or daemontools); with supervisor "
              "bootscript a spool runs qmail-smtpd from inetd, as the seed does")
    service["tcp_rules"] = rules
    home = settings["lookup"]["home"]
    port = service["smtpd_port"]
    service["inetd_line"] = (
        f"{'smtp' if port == 25 else port} stream tcp nowait "
        f"{settings['lookup']['users']['qmaild']} {home}/bin/tcp-env tcp-env "
        f"/bin/sh {home}/supervise/qmail-smtpd/smtpd"
    )
    log = service["log"]
    # multilog(8) takes s4096..s16777215 and keeps at least two files.
    log["size"] = _v("integer")(log["size"], "qmail:service:log:size", 4096, 16777215)
    log["count"] = _v("integer")(log["count"], "qmail:service:log:count", 2, 1000)
    # qmail-send's log: syslog through splogger (journald keeps it under the
    # unit's name), or under daemontools rc's stdout, read by multilog.
    service["send_logger"] = "" if service["supervisor"] == "daemontools" else "splogger qmail"
    _tls_settings(settings)
    # morercpthosts works through morercpthosts.cdb: rebuilt when the file
    # changes, removed with it.
    newmrh = settings["control_reload"]["newmrh"]
    service["newmrh_build"] = [n for n in newmrh if n in settings["control_managed"]]
    service["newmrh_drop"] = [n for n in newmrh if n in settings["control_absent"]]


# --------------------------------------------------------------------------
# tls: qmail.service.tls (STARTTLS and SMTPS through tlswrapper)
# --------------------------------------------------------------------------
def _tls_release_check():
    """tlswrapper is packaged from Debian 12 on; on 11 qmail:tls cannot work."""
    if __grains__.get("os") != "Debian":
        return
    try:
        major = int(__grains__.get("osmajorrelease") or 0)
    except (TypeError, ValueError):
        return
    if 0 < major < 12:
        _fail("qmail:tls:enable", f"Debian {major} has no tlswrapper package (Debian 12 and "
                                  "later have it): TLS for qmail-smtpd needs it; set "
                                  "qmail:tls:enable: false on this host")


def _tls_settings(settings):
    tls = settings["tls"]
    service = settings["service"]
    paths = settings["lookup"]["service"]
    home = settings["lookup"]["home"]
    qmaild = settings["lookup"]["users"]["qmaild"]
    _v("boolean")(tls["enable"], "qmail:tls:enable")
    _v("boolean")(tls["smtps"], "qmail:tls:smtps")
    tls["smtps_port"] = _v("integer")(tls["smtps_port"], "qmail:tls:smtps_port", 1, 65535)
    for name in ("days_valid", "days_remaining"):
        tls["self_signed"][name] = _v("integer")(
            tls["self_signed"][name], f"qmail:tls:self_signed:{name}", 1, 36500)
    if tls["self_signed"]["days_remaining"] >= tls["self_signed"]["days_valid"]:
        _fail("qmail:tls:self_signed:days_remaining",
              "must be less than days_valid (it would renew on every run)")
    mode = service["smtpd_mode"]
    tls["active"] = tls["enable"] and mode != "off"
    if tls["enable"] and mode == "inetd":
        _fail("qmail:tls:enable", "TLS runs through tlswrapper under tcpserver; inetd mode "
                                  "has none: set qmail:service:smtpd: tcpserver")
    if tls["smtps"] and not tls["enable"]:
        _fail("qmail:tls:smtps", "implicit TLS needs qmail:tls:enable: true")
    if tls["active"] and tls["smtps"] and tls["smtps_port"] == service["smtpd_port"]:
        _fail("qmail:tls:smtps_port", f"{tls['smtps_port']} is qmail:service:smtpd_port "
                                      "already")
    if tls["active"]:
        _tls_release_check()
    if tls["certificate"] or tls["key"]:
        # Checked even where TLS is off: a bad pair must not wait for the day
        # it is switched on.
        tls["given"] = __utils__["qmail_tls.check_pair"](
            tls["certificate"], tls["key"], settings["me"], "qmail:tls")
    else:
        tls["given"] = None
    tls_dir = paths["tls_dir"]
    tls["files"] = {
        "dir": tls_dir,
        "key": os.path.join(tls_dir, "key.pem"),          # self-signed: its key
        "certificate": os.path.join(tls_dir, "cert.pem"),  # self-signed: its certificate
        "pem": os.path.join(tls_dir, "smtpd.pem"),         # what tlswrapper reads
    }
    # The command lines of qmail-smtpd's services, as data. Under TLS
    # tcpserver stays root: tlswrapper's key process reads the PEM as root
    # (per connection, so a new certificate needs no restart), then drops
    # to a jail; tlswrapper-smtp or tlswrapper runs the SMTP side as qmaild
    # (uid and primary group).
    wrapper = ["/bin/sh", f"{home}/supervise/qmail-smtpd/smtpd"]
    tlswrapper = os.path.join(paths["tlswrapper_bin"], "tlswrapper")
    smtp_helper = os.path.join(paths["tlswrapper_bin"], "tlswrapper-smtp")
    pem = tls["files"]["pem"]
    # tlswrapper cuts a connection idle for 60 s and tlswrapper-smtp one
    # idle for 15 s (their -t/-T defaults; seen in the lab: a session paused
    # 20 s after RCPT was dropped). qmail-smtpd waits timeoutsmtpd (1200 s
    # by default; RFC 5321 asks for 5 minutes at least): TLS must not cut
    # sooner than qmail itself would.
    idle = str(settings["control_managed"].get("timeoutsmtpd") or 1200).strip()
    services = []
    if mode == "tcpserver":
        if tls["active"]:
            services.append({"name": "qmail-smtpd", "port": service["smtpd_port"],
                             "tls": "starttls", "drop": False, "program": [
                                 tlswrapper, "-t", idle, "-n", "-f", pem,
                                 smtp_helper, "-T", idle, "-u", qmaild, *wrapper]})
        else:
            services.append({"name": "qmail-smtpd", "port": service["smtpd_port"],
                             "tls": "none", "drop": True, "program": wrapper})
        if tls["active"] and tls["smtps"]:
            services.append({"name": "qmail-smtpsd", "port": tls["smtps_port"],
                             "tls": "implicit", "drop": False, "program": [
                                 tlswrapper, "-t", idle, "-f", pem, "-u", qmaild,
                                 *wrapper]})
    service["smtpd_services"] = services
    # What runs under no supervisor here (stopped, units and links removed).
    running = {s["name"] for s in services}
    service["smtpd_stopped"] = [n for n in ("qmail-smtpd", "qmail-smtpsd") if n not in running]


# --------------------------------------------------------------------------
# Ownership: what the values point at is the formula's (issue 19)
# --------------------------------------------------------------------------
def _check_owns_not_in_pillar(pillar):
    """The ownership rules are the formula's parameters, never pillar data."""
    if isinstance(pillar, dict) and pillar.get("owns") is not None:
        _fail("qmail:owns", "set by the formula's parameters (qmail/parameters/), not by the "
                            "pillar: the pillar cannot widen what the formula may touch")


def _check_ownership(settings, defaults, os_family):
    """After every form check: each value points at something the formula
    owns (``_utils/qmail_owner.py``; rules in parameters ``owns``)."""
    lookup = settings["lookup"]
    ledger = _v("path")(lookup["ledger"], "qmail:lookup:ledger")
    _v("own_dir")(os.path.dirname(ledger), "qmail:lookup:ledger")
    if os.path.isdir(ledger):
        _fail("qmail:lookup:ledger", f"{ledger} is a folder, not a file")
    lookup["ledger"] = ledger
    default_lookup = _merge(defaults.get("lookup", {}), (os_family or {}).get("lookup", {}))
    scratch = __utils__["qmail_owner.scratch_roots"](__opts__.get("qmail_scratch_roots"))
    __utils__["qmail_owner.check"](settings, settings["owns"], default_lookup, scratch)


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------
def merge(defaults=None, os_family=None, pillar=None):
    """
    Merge the formula's ``defaults``, the ``os_family`` parameters and
    ``pillar`` (the ``qmail`` pillar; its ``lookup`` goes over the OS-level
    parameters), check every key, and add what the states need:

    - ``me``: pillar ``qmail:me`` or the minion's ``fqdn`` grain;
    - ``control_managed``: control file -> value for the host's role;
    - ``control_absent``: control files to remove;
    - ``control_reload``: ``hup``/``restart``/``newmrh`` -> the files among
      them whose change needs that (for the service states' requisites);
    - ``build_source``, ``build_conf``, ``build_remove``,
      ``accounts_groups``/``accounts_users``, ``aliases_files``,
      ``aliases_maildirs``, ``delivery_arg`` (qmail.users/build/aliases);
    - ``sendmail`` (qmail.sendmail) and ``service:*`` (qmail.service).

    Raises SaltInvocationError naming the pillar key on bad input.

    CLI Example::

        salt '*' qmail_settings.merge pillar="{role: client, spool: mail.example.org}"

    Without ``defaults``, the parameters shipped with the formula (and this
    minion's ``os_family`` file) are used, as ``show`` does.
    """
    if defaults is None:
        defaults, os_family = _parameters()
    pillar = _plain(pillar) if pillar is not None else {}
    return _merge_checked(defaults, os_family, pillar)


def _merge_checked(defaults, os_family, pillar):
    _check_renamed(pillar)
    _check_owns_not_in_pillar(pillar)
    pillar = _drop_nulls(pillar, "qmail")
    _check_shape(defaults, pillar, "qmail")
    # The derivations below add to the settings: copy what they hold of the
    # pillar (new dicts and lists; strings and numbers are immutable).
    settings = _copy(_merge(_merge(defaults, os_family or {}), pillar))
    _check_lookup(settings["lookup"])
    _check_tofs(settings["tofs"])
    _derive_control(settings)
    _build_settings(settings)
    _sendmail_settings(settings)
    _service_settings(settings)
    _check_ownership(settings, defaults, os_family)
    _filter_settings(settings)
    return settings


def _filter_settings(settings):
    """qmail:filter (issue 23): its schema lives in _utils/qmail_filter.py;
    its folder is one the formula owns, as TLS's (``/etc/qmail*``)."""
    # Plain validators, fetched here: inside a utils function this module's
    # __utils__ is not reachable.
    validators = {name: _v(name) for name in __utils__["qmail_filter.validators"]()}
    __utils__["qmail_filter.derive"](settings, validators.__getitem__,
                                     __utils__["qmail_filter_keys.check"])
    lookup = settings["lookup"]
    __utils__["qmail_owner.place"](
        lookup["filter"]["dir"], "qmail:lookup:filter:dir", "tls", settings["owns"],
        lookup["home"], __utils__["qmail_owner.scratch_roots"](__opts__.get("qmail_scratch_roots")))


def _parameters(tplroot="qmail"):
    """defaults.yaml and this minion's os_family file, from the file server."""
    import yaml  # pylint: disable=import-outside-toplevel

    # map.jinja takes tplroot from the importing SLS file's folder: an SLS
    # outside the formula's folder (a top-level one of the user's) gives ".".
    if tplroot in ("", "."):
        tplroot = "qmail"

    def _yaml(path, required):
        url = f"salt://{tplroot}/parameters/{path}"
        text = __salt__["cp.get_file_str"](url)
        if not text and required:
            raise SaltInvocationError(f"{url} cannot be read: is the qmail formula in this "
                                      "minion's file roots (saltenv)?")
        # libyaml's loader where PyYAML has it: a tenth of the pure Python
        # one's time, the same safe constructors.
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if (
            text) else {}

    return (_yaml("defaults.yaml", True),
            _yaml(f"os_family/{__grains__['os_family']}.yaml", False))


def _copy(value):
    """A copy of merged settings: new dicts and lists, the same strings and
    numbers (a tenth of copy.deepcopy's time on a 100,000-entry list)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):  # no call per string: rcpthosts can hold 100,000
        return [_copy(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def show(pillar=None, tplroot="qmail"):
    """
    Show the merged, checked settings for this minion, from the parameters
    shipped with the formula (``<tplroot>/parameters/``) and its pillar:
    what the SLS files see (map.jinja calls this).

    Without ``pillar``, the result is computed once per state run: every SLS
    file imports map.jinja, so a run asks for it about ten times, always
    with the same parameters, grains and pillar.

    CLI Example::

        salt '*' qmail_settings.show
    """
    if pillar is not None:
        return merge(*_parameters(tplroot), pillar)
    return _copy(_this_run(tplroot))


def _this_run(tplroot):
    """The settings of this state run, merged once (callers copy)."""
    run = _run_context()
    key = f"qmail_settings.show:{tplroot}"
    found, settings = __utils__["qmail_runcache.lookup"](run, key)
    if not found:
        settings = __utils__["qmail_runcache.store"](run, key, merge(
            *_parameters(tplroot), __salt__["pillar.get"]("qmail", {}, unmask=True)))
    return settings


def get(key, tplroot="qmail"):
    """
    One value of the merged, checked settings (``show``), by its
    colon-separated path: the defaults the formula's execution modules use
    for an argument the caller left out come from here, so each lives only
    in parameters/ (or is derived here).

    CLI Example::

        salt '*' qmail_settings.get lookup:home
        salt '*' qmail_settings.get sendmail:mqueue_lock
    """
    missing = object()
    value = salt.utils.data.traverse_dict_and_list(_this_run(tplroot), key, missing)
    if value is missing:
        raise SaltInvocationError(f"key: the formula's settings have no {key!r}")
    return _copy(value)


def _run_context():
    """This state run's context dict (see _utils/qmail_runcache.py)."""
    return __context__.value() if hasattr(__context__, "value") else __context__
