"""
The settings of ``qmail:service`` and ``qmail:tls`` (how qmail-send and
qmail-smtpd run: supervisor, ports, logs, tlswrapper), checked and derived
for ``qmail_settings.merge`` (``__utils__``): the command lines of
qmail-smtpd's services, the inetd line, the files of the TLS pair.

The loader gives ``_utils`` modules no ``__utils__``: ``qmail_settings``
passes ``v``, the getter of the shared validators
(``_utils/qmail_validate.py``), and whatever else a check needs.
"""

import os

from salt.exceptions import SaltInvocationError

SUPERVISORS = ("systemd", "daemontools", "bootscript")
SMTPD_MODES = ("tcpserver", "inetd")


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def service_settings(v, settings, tcp_rules, release_check, check_pair):
    """``qmail:service`` and ``qmail:tls``: ``tcp_rules`` turns
    ``qmail:relay_clients`` into tcprules lines (``qmail_tcprules``),
    ``release_check`` fails where this OS release has no tlswrapper,
    ``check_pair`` checks a given certificate and key (``qmail_tls``)."""
    service = settings["service"]
    v("one_of")(service["supervisor"], SUPERVISORS, "qmail:service:supervisor")
    v("one_of")(service["smtpd"], SMTPD_MODES, "qmail:service:smtpd")
    service["smtpd_port"] = v("integer")(service["smtpd_port"], "qmail:service:smtpd_port",
                                          1, 65535)
    service["smtpd_concurrency"] = v("integer")(
        service["smtpd_concurrency"], "qmail:service:smtpd_concurrency", 1, 10000)
    rules = tcp_rules(settings["relay_clients"])
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
    log["size"] = v("integer")(log["size"], "qmail:service:log:size", 4096, 16777215)
    log["count"] = v("integer")(log["count"], "qmail:service:log:count", 2, 1000)
    # qmail-send's log: syslog through splogger (journald keeps it under the
    # unit's name), or under daemontools rc's stdout, read by multilog.
    service["send_logger"] = "" if service["supervisor"] == "daemontools" else "splogger qmail"
    _tls_settings(v, settings, release_check, check_pair)
    # morercpthosts works through morercpthosts.cdb: rebuilt when the file
    # changes, removed with it.
    newmrh = settings["control_reload"]["newmrh"]
    service["newmrh_build"] = [n for n in newmrh if n in settings["control_managed"]]
    service["newmrh_drop"] = [n for n in newmrh if n in settings["control_absent"]]


def _tls_settings(v, settings, release_check, check_pair):
    tls = settings["tls"]
    service = settings["service"]
    paths = settings["lookup"]["service"]
    home = settings["lookup"]["home"]
    qmaild = settings["lookup"]["users"]["qmaild"]
    v("boolean")(tls["enable"], "qmail:tls:enable")
    v("boolean")(tls["smtps"], "qmail:tls:smtps")
    tls["smtps_port"] = v("integer")(tls["smtps_port"], "qmail:tls:smtps_port", 1, 65535)
    for name in ("days_valid", "days_remaining"):
        tls["self_signed"][name] = v("integer")(
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
        release_check()
    if tls["certificate"] or tls["key"]:
        # Checked even where TLS is off: a bad pair must not wait for the day
        # it is switched on.
        tls["given"] = check_pair(
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
