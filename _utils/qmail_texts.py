"""
The formula's default texts of its small generated files (run scripts,
units, rc, the tcprules source), keyed by their TOFS path
(``qmail_tofs.contents`` takes a site's file of that path instead when the
file server lists one).

Why Python, not template files: a ``file.managed`` of a salt:// template
costs two file server round trips per file and a Jinja compile in every
apply, converged or not (README: Benchmarks, ``bench_converged``); text
made here costs neither. Pure: each function takes the values its file
names (the ``context`` of the SLS) and returns the whole text. Every value
put in a shell word is quoted (``shlex.quote``, what Salt's ``quote`` filter
does), so it stays one word whatever it holds.
"""

import inspect
import shlex

HEADER = "# Managed by Salt (qmail.{}); local changes are overwritten.\n"


def _q(value):
    return shlex.quote(str(value))


def _script(sls):
    """A shell script's first lines: the interpreter, then whose it is."""
    return "#!/bin/sh\n" + HEADER.format(sls)


def rc(home, delivery_arg, logger="splogger qmail"):
    """``<home>/rc``: qmail-start with the default delivery, to syslog
    through splogger (``logger``) or, empty, to stdout for multilog."""
    head = ("#!/bin/sh\n"
            "# Managed by Salt (qmail formula, qmail.build): qmail-start with the\n"
            "# default delivery for users without a .qmail file; logs go to")
    start = f'exec env - PATH="{home}/bin:$PATH" \\\n    qmail-start {delivery_arg}'
    if logger:
        return f"{head} syslog.\n{start} {logger}\n"
    return f"{head} stdout (multilog).\n{start}\n"


def send_run(home):
    """The supervised qmail-send: exec rc."""
    return (_script("service")
            + "# qmail-send and its helpers, as <home>/rc starts them; rc sets PATH itself.\n"
            f"exec 2>&1\nexec /bin/sh {_q(home + '/rc')}\n")


def log_run(daemontools_bin, user, size, count, log_dir):
    """A service's logger: multilog as ``user`` into ``log_dir``."""
    return (_script("service")
            + f"# multilog as {user}: timestamps, {count} files of {size} bytes in {log_dir}.\n"
            f"exec {_q(daemontools_bin + '/setuidgid')} {_q(user)} \\\n"
            f"    {_q(daemontools_bin + '/multilog')} t {_q(f's{size}')} {_q(f'n{count}')}"
            f" {_q(log_dir)}\n")


def _unit(description, after, service, *, before=None, sls="service"):
    """A systemd unit started at boot, restarted when it exits."""
    order = f"After={after}\n" + (f"Before={before}\n" if before else "")
    return (HEADER.format(sls) + f"[Unit]\nDescription={description}\n{order}\n"
            f"[Service]\n{service}\n\n[Install]\nWantedBy=multi-user.target\n")


def qmail_send_service(home):
    """qmail-send under systemd: TERM to qmail-send alone, HUP to reload."""
    return _unit(
        f"qmail-send and its helpers, from {home}/rc", "local-fs.target network.target",
        "# The run script execs rc, which sets PATH itself (systemd would not expand\n"
        "# ${PATH} inside Environment=).\n"
        f"ExecStart={home}/supervise/qmail-send/run\n"
        "# qmail-send re-reads locals and virtualdomains on HUP.\n"
        "ExecReload=/bin/kill -HUP $MAINPID\n"
        "# TERM to qmail-send only: it lets deliveries under way finish, then exits,\n"
        "# and its helpers (qmail-lspawn, -rspawn, -clean, the logger) follow on\n"
        "# their own once their pipes close; killing them would cut deliveries short.\n"
        "KillMode=process\nTimeoutStopSec=90\nRestart=always\nRestartSec=1")


def qmail_svscan_service(service_dir, daemontools_bin):
    """daemontools' svscan under systemd, for the service directory."""
    return _unit(f"daemontools svscan for qmail ({service_dir})",
                 "local-fs.target network.target",
                 f"ExecStart={daemontools_bin}/svscan {service_dir}\nRestart=always\nRestartSec=1")


def qmail_smtpd_service(home, port, service="qmail-smtpd", tls="none"):
    """qmail-smtpd (or qmail-smtpsd) under tcpserver, under systemd."""
    what = f" ({tls} TLS)" if tls != "none" else ""
    return _unit(
        f"{service} under tcpserver on port {port}{what}", "network.target qmail-send.service",
        "# The run script refuses to start without control/rcpthosts. Its output\n"
        "# (tcpserver -v's connection lines) goes to the journal under this unit.\n"
        f"ExecStart={home}/supervise/{service}/run\nRestart=always\nRestartSec=2")


def _rcpthosts_guard(home, refusal):
    control = _q(home + "/control/rcpthosts")
    return (f"if [ ! -f {control} ]; then\n    echo \"{refusal}\"\n    exit 1\nfi\n")


def _qmailqueue(qmailqueue, why):
    if not qmailqueue:
        return ""
    return f"{why}QMAILQUEUE={_q(qmailqueue)}\nexport QMAILQUEUE\n"


def smtpd(home, qmailqueue=""):
    """qmail-smtpd for one connection, refused while rcpthosts is missing."""
    return (_script("service")
            + "# qmail-smtpd for one connection (from tcpserver or from inetd's tcp-env).\n"
            "# Without rcpthosts qmail-smtpd takes mail for any domain (an open relay):\n"
            "# checked per connection, so removing the file later cannot open the relay.\n"
            + _rcpthosts_guard(home, f"421 {home}/control/rcpthosts is missing; "
                                     "not taking mail (#4.3.0)")
            + "# SMTP AUTH only on qmail-smtpsd (qmail:submission), never here: on port 25\n"
            "# tlswrapper-smtp would announce it before STARTTLS.\nunset SMTPAUTH\n"
            + _qmailqueue(qmailqueue, "# qmail:filter: qmail-smtpd hands each message to the"
                                      " chain, which ends in\n# qmail-queue (a step that fails:"
                                      " 4xx, the sender retries).\n")
            + f"exec {_q(home + '/bin/qmail-smtpd')}\n")


def tcp_smtp(rules, tcp_rules):
    """The tcprules source of qmail-smtpd's relay rules."""
    return ("# Managed by Salt (qmail.service, pillar qmail:relay_clients); local changes\n"
            f"# are overwritten. tcprules compiles this into {rules}.cdb.\n"
            + "".join(f"{rule}\n" for rule in tcp_rules))


def smtpd_run(home, rules, qmaild, ucspi_bin, port, concurrency, program, drop, tls,
              listen):
    """qmail-smtpd (or -smtpsd) under tcpserver, refusing to start while
    rcpthosts is missing; as qmaild from the start (``drop``), or root for
    tlswrapper's key process with qmail-smtpd as qmaild."""
    words = " ".join(_q(word) for word in program)
    head = (_script("service")
            + f"# qmail-smtpd under tcpserver on port {port}, with the relay rules of"
            f" {rules}.cdb.\n"
            f"# Host {listen}: 0 is IPv4 and IPv6 (qmail:ipv6, ucspi-tcp-ipv6), 0.0.0.0 IPv4"
            " only.\nexec 2>&1\n"
            "# Without rcpthosts qmail-smtpd takes mail for any domain: an open relay.\n"
            + _rcpthosts_guard(home, f"qmail-smtpd: {home}/control/rcpthosts is missing;"
                                     " not starting (open relay)")
            + f"LOCAL=`head -n 1 {_q(home + '/control/me')}`\n")
    flags = "# -R -H: no ident or DNS look-ups per connection; -l: our own name, not DNS's.\n"
    tcpserver = f'exec {_q(ucspi_bin + "/tcpserver")} -v -R -H -l "${{LOCAL:-0}}" \\\n'
    tail = f"    {listen} {port} {words}\n"
    if drop:
        return (head + f"QMAILDUID=`id -u {_q(qmaild)}` || exit 1\n"
                f"NOFILESGID=`id -g {_q(qmaild)}` || exit 1\n" + flags
                + "# -b: as many waiting connections as -c; with tcpserver's default 20, a\n"
                "# burst beyond it leaves clients half-open until their timeoutremote.\n"
                + tcpserver
                + f'    -c {concurrency} -b {concurrency} -u "$QMAILDUID" -g "$NOFILESGID" \\\n'
                f"    -x {_q(rules + '.cdb')} \\\n" + tail)
    return (head + f"# TLS ({tls}): tcpserver stays root so that tlswrapper's key process can\n"
            "# read the key (per connection) before it jails itself; qmail-smtpd runs as\n"
            f"# {qmaild} (-u: its uid and primary group).\n" + flags + tcpserver
            + f"    -c {concurrency} -b {concurrency} -x {_q(rules + '.cdb')} \\\n" + tail)


def submission(home, passwd, authenticated, cvm_bin, qmailqueue=""):
    """qmail-smtpd for one qmail-smtpsd connection, SMTP AUTH required."""
    return (_script("service")
            + "# qmail-smtpd for one connection of qmail-smtpsd (implicit TLS, from\n"
            "# tlswrapper) with SMTP AUTH required (qmail:submission): MAIL before a good\n"
            "# AUTH gets 530; after it the client may relay. The passwords are crypt\n"
            f"# hashes in {passwd}, read by cvm-pwfile per login (no restart).\n"
            + _rcpthosts_guard(home, f"421 {home}/control/rcpthosts is missing; "
                                     "not taking mail (#4.3.0)")
            + f"SMTPAUTH='!'\nCVM_PWFILE_PATH={_q(passwd)}\nCVM_PWFILE_PWCMP=crypt\n"
            "# The user name is the whole login (no domain split off at '@').\n"
            "CVM_ACCOUNT_SPLIT_CHARS=\n"
            "export SMTPAUTH CVM_PWFILE_PATH CVM_PWFILE_PWCMP CVM_ACCOUNT_SPLIT_CHARS\n"
            + _qmailqueue(qmailqueue, "# qmail:filter: the chain, as on port 25"
                                      " (authenticated mail is signed).\n")
            + f"exec {_q(home + '/bin/qmail-smtpd')} {_q(cvm_bin + '/cvm-checkpassword')} \\\n"
            f"    {_q(cvm_bin + '/cvm-pwfile')} {_q(authenticated)}\n")


def authenticated(**_):
    """Run after a good login on qmail-smtpsd: logs the user's name."""
    return (_script("service")
            + "# Run by cvm-checkpassword after a good login on qmail-smtpsd: the log\n"
            "# names the user (the password is never seen here).\n"
            'echo "qmail-smtpsd: AUTH ok: user ${USER:-?} from ${TCPREMOTEIP:-?}" >&2\n'
            "exit 0\n")


def filterd_run(python, daemon, socket, user):
    """The supervised qmail-filterd (daemontools)."""
    return (_script("filter")
            + f"# qmail-filterd, started as root: it binds its socket, then becomes {user}.\n"
            f"exec 2>&1\nexec {_q(python)} -I {_q(daemon)} {_q(socket)} {_q(user)}\n")


def qmail_filterd_service(python, daemon, socket, user):
    """qmail-filterd under systemd."""
    return _unit(
        "qmail-filterd: the qmail:filter chain qmail-smtpd runs through QMAILQUEUE",
        "local-fs.target network.target",
        f"# Started as root: it binds its socket, then becomes {user}.\n"
        f"ExecStart={python} -I {daemon} {socket} {user}\nRestart=always\nRestartSec=1",
        before="qmail-smtpd.service qmail-smtpsd.service", sls="filter")


def filter_sendmail(qmailqueue, sendmail):
    """The host's sendmail while qmail:filter runs: qmail's, with QMAILQUEUE."""
    return (_script("filter")
            + "# This host's sendmail while qmail:filter runs: qmail-inject honours\n"
            "# QMAILQUEUE only from its environment, so mail injected here (cron, mail(1),\n"
            "# scripts) goes through the chain as qmail-smtpd's does, and DKIM signs it.\n"
            f"QMAILQUEUE={_q(qmailqueue)}\nexport QMAILQUEUE\nexec {_q(sendmail)} \"$@\"\n")


# TOFS path (under qmail/files/<folder>/) -> the function of its default text.
TEXTS = {
    "build/rc.jinja": rc,
    "service/send-run": send_run,
    "service/log-run": log_run,
    "service/qmail-send.service": qmail_send_service,
    "service/qmail-svscan.service": qmail_svscan_service,
    "service/qmail-smtpd.service": qmail_smtpd_service,
    "service/smtpd": smtpd,
    "service/tcp.smtp": tcp_smtp,
    "service/smtpd-run": smtpd_run,
    "service/submission": submission,
    "service/authenticated": authenticated,
    "filter/filterd-run": filterd_run,
    "filter/qmail-filterd.service": qmail_filterd_service,
    "filter/sendmail": filter_sendmail,
}


def text(path, context):
    """The default text of the formula's file ``path`` (a key of TEXTS) for
    the values ``context``; None when the formula has no text of that name.
    ValueError names the values missing from ``context`` or unknown to it."""
    make = TEXTS.get(path)
    if make is None:
        return None
    params = inspect.signature(make).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return make(**context)
    known = [p.name for p in params]
    missing = [p.name for p in params if p.default is p.empty and p.name not in context]
    unknown = sorted(set(context) - set(known))
    if missing or unknown:
        raise ValueError(f"{path} takes {', '.join(known)}"
                         + (f"; missing: {', '.join(missing)}" if missing else "")
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    return make(**context)
