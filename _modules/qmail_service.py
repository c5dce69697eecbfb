"""
Run qmail: what supervises qmail-send, how it is told of changes, the
spool's SMTP relay rules, and the operator's view of the queue.

qmail-send runs from ``<home>/rc`` under one of three supervisors:

- ``systemd``: unit ``qmail-send.service`` (the default);
- ``daemontools``: ``svscan`` watches a service directory holding
  ``<home>/supervise/qmail-send``;
- ``bootscript``: the seed's way, ``<home>/rc &`` from a boot script.

qmail-send re-reads ``locals`` and ``virtualdomains`` on SIGHUP, reads its
other control files only at start, and retries the queue at once on SIGALRM
(qmail-send(8)); the functions here send those signals through whichever
supervisor runs it, so the supervisor never sees a crash. Each supervisor
is a backend of ``_utils/qmail_supervisors.py`` with the same interface,
chosen once per call (``_backend``): no function here branches on it.
"""

import functools
import logging
import os
import re
import signal
import time

import salt.utils.systemd
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_service"

# qmail-send is the default service of the functions below; the list of
# services is the supervisors' (_utils/qmail_supervisors.py: services()).
SEND = "qmail-send"
SMTPD = "qmail-smtpd"


def _services():
    return __utils__["qmail_supervisors.services"]()


def __virtual__():
    return __virtualname__


def tcp_rules(relay_clients, key="qmail:relay_clients", ipv6=False):
    """
    Turn ``relay_clients`` (IPv4 addresses or networks in CIDR notation;
    with ``ipv6``, the spool listening on IPv6 too, also whole IPv6
    addresses) into the lines of a tcprules source for qmail-smtpd: one
    ``<prefix>:allow,RELAYCLIENT=""`` per client network, then ``:allow``
    for everyone else (who may only send to ``rcpthosts``). tcprules knows
    dotted prefixes (``10.1.``) and ranges in the last octet
    (``10.1.2.0-127``), so other prefix lengths are spelt with those; an
    IPv6 address is spelt as tcpserver writes it (``_utils/qmail_ipv6.py``).

    CLI Example::

        salt '*' qmail_service.tcp_rules '[10.1.2.0/24, 192.168.5.7]'
        salt '*' qmail_service.tcp_rules '[10.1.2.0/24, "2001:db8:0:1::5"]' ipv6=True
    """
    six = functools.partial(__utils__["qmail_ipv6.relay_address"],
                            enabled=_v("boolean")(ipv6, "ipv6"))
    return __utils__["qmail_tcprules.tcp_rules"](relay_clients, __utils__["qmail_validate.plain"],
                                                key, six)


# --------------------------------------------------------------------------
# Finding and signalling qmail-send
# --------------------------------------------------------------------------
def _setting(*keys):
    """
    A value of the formula's merged settings (``qmail_settings.get``), for
    arguments the caller left out. The states always pass every path; these
    defaults serve the CLI and live in parameters/ only.
    """
    return __salt__["qmail_settings.get"](":".join(keys))


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


# Every argument a user can type on the command line goes through the
# shared validators: an error names the argument, never a traceback.
def _supervisor(supervisor):
    return _v("one_of")(supervisor or _setting("service", "supervisor"),
                        __utils__["qmail_supervisors.supervisors"](), "supervisor")


def _service_dir(service_dir):
    return _v("path")(service_dir or _setting("lookup", "service", "service_dir"),
                      "service_dir")


def _home(home):
    return _v("path")(home or _setting("lookup", "home"), "home")


def _timeout(timeout):
    return _v("integer")(timeout, "timeout", 1, 86400)


def _unit(name, key="name"):
    """A unit or service folder name: no path, no option."""
    return _v("matches")(name, key, r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}", "a service name")


def _run(argv, check=True, **kwargs):
    """Run ``argv`` (a list: no shell ever sees a value) through Salt's cmd.run_all."""
    proc = __salt__["cmd.run_all"](argv, python_shell=False, ignore_retcode=not check,
                                   **kwargs)
    if check and proc["retcode"] != 0:
        said = proc["stderr"].strip() or proc["stdout"].strip()
        raise CommandExecutionError(f"{' '.join(argv)} failed ({proc['retcode']}): {said}")
    return proc["stdout"]


# The path settings a supervisor may ask for, each checked when it does.
_PATHS = {
    "home": _home,
    "service_dir": _service_dir,
    "daemontools_bin": lambda given: _v("path")(given or _setting(
        "lookup", "service", "daemontools_bin"), "daemontools_bin"),
    "log_dir": lambda given: _v("path")(given or _setting("lookup", "service", "log_dir"),
                                        "log_dir"),
}


def _backend(supervisor=None, **given):
    """
    The supervisor ``supervisor`` (default: the settings'), chosen once
    (``_utils/qmail_supervisors.py``): every function below goes through its
    interface. ``given`` holds the path arguments of the call; the others
    come from the settings, when the supervisor needs them.
    """
    return _supervised_by(_supervisor(supervisor), given)


def _supervised_by(name, given):
    """The backend ``name`` (a checked supervisor, or ``inetd``)."""
    return __utils__["qmail_supervisors.backend"](
        name, run_all=__salt__["cmd.run_all"],
        pids_named=__utils__["qmail_procs.pids_named"], alive=__utils__["qmail_procs.alive"],
        booted=systemd_booted(), path=lambda key: _PATHS[key](given.get(key)))


def systemd_booted():
    """
    Whether systemd runs this host (sd_booted(3), as Salt's
    ``salt.utils.systemd.booted`` tells it). Where it does not, nothing runs
    under it, whatever ``systemctl`` says.

    CLI Example::

        salt '*' qmail_service.systemd_booted
    """
    return salt.utils.systemd.booted(__context__)


def unit_state(name):
    """
    What systemd knows of unit ``name`` (``qmail-send``, ``qmail-smtpd``,
    ...), in one ``systemctl show``: ``LoadState``, ``ActiveState``,
    ``UnitFileState``, ``MainPID`` and ``NeedDaemonReload``.

    CLI Example::

        salt '*' qmail_service.unit_state qmail-send
    """
    return _backend("systemd").unit(_unit(name))


def svstat(name, service_dir=None, daemontools_bin=None):
    """
    The PID of service ``name`` under daemontools (``svstat
    <service_dir>/<name>``), or None when it is down or not supervised.

    CLI Example::

        salt '*' qmail_service.svstat qmail-smtpd
    """
    return _backend("daemontools", service_dir=service_dir,
                    daemontools_bin=daemontools_bin).pid(_unit(name))


def service_pid(name, supervisor=None, service_dir=None, daemontools_bin=None):
    """
    The PID of ``qmail-send`` or ``qmail-smtpd`` (tcpserver) as its
    supervisor knows it, or None when it is not running. Under the boot
    script qmail-send is found by name; qmail-smtpd runs from inetd there.

    CLI Example::

        salt '*' qmail_service.service_pid qmail-smtpd
    """
    return _backend(supervisor, service_dir=service_dir,
                    daemontools_bin=daemontools_bin).pid(_unit(name))


def send_pid(supervisor=None, service_dir=None, daemontools_bin=None):
    """
    Return the PID of qmail-send as its supervisor knows it, or None when it
    is not running.

    CLI Example::

        salt '*' qmail_service.send_pid
        salt '*' qmail_service.send_pid supervisor=daemontools
    """
    return service_pid(SEND, supervisor, service_dir, daemontools_bin)


def start_time(pid):
    """
    When process ``pid`` started, in clock ticks since boot (field 22 of
    /proc/PID/stat), or None when it is gone: with the PID, it tells a
    restarted process from the same one.

    CLI Example::

        salt '*' qmail_service.start_time 1234
    """
    pid = _v("integer")(pid, "pid", 1)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return int(handle.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _catches(pid, sig):
    """
    Whether process ``pid`` has a handler for ``sig`` (Linux: SigCgt in
    /proc/<pid>/status); None where that cannot be known.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except OSError:
        return None
    return None


def _wait_ready(pid, sig, timeout=15):
    """
    Wait until a freshly started qmail-send catches ``sig``: sent earlier
    (while rc and qmail-start are still on their way to qmail-send), HUP or
    ALRM would kill it instead.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        catches = _catches(pid, sig)
        if catches:
            return
        if catches is None:
            time.sleep(1)  # no /proc: give it the second it needs
            return
        time.sleep(0.1)
    raise CommandExecutionError(f"{SEND} (pid {pid}) does not handle signal {sig}")


def _signal(sig, supervisor, service_dir, daemontools_bin=None):
    """Send ``sig`` to qmail-send alone (not to its helpers); return its PID."""
    backend = _backend(supervisor, service_dir=service_dir, daemontools_bin=daemontools_bin)
    pid = backend.pid(SEND)
    if pid is None:
        raise CommandExecutionError(f"{SEND} is not running (supervisor {backend.name})")
    if sig != signal.SIGTERM:
        _wait_ready(pid, sig)
    log.info("qmail_service: sending signal %s to %s (pid %s)", sig, SEND, pid)
    backend.signal(SEND, sig)
    return pid


def hup(supervisor=None, service_dir=None, daemontools_bin=None):
    """
    Make qmail-send re-read ``locals`` and ``virtualdomains`` (SIGHUP); it
    keeps running with the same PID. Returns that PID.

    CLI Example::

        salt '*' qmail_service.hup
    """
    return _signal(signal.SIGHUP, supervisor, service_dir, daemontools_bin)


def flush(supervisor=None, service_dir=None, daemontools_bin=None):
    """
    Make qmail-send retry every queued message now (SIGALRM), as
    ``qmail-tcpok; svc -a`` does. Returns qmail-send's PID.

    CLI Example::

        salt '*' qmail_service.flush
    """
    return _signal(signal.SIGALRM, supervisor, service_dir, daemontools_bin)


def _checked(service, supervisor, **paths):
    """The supervisor, once it is known to run ``service`` here."""
    _v("one_of")(service, _services(), "service")
    backend = _backend(supervisor, **paths)
    why = backend.refusal(service)
    if why:
        _v("fail")("service", why)
    backend.check(service)
    return backend


def start(supervisor=None, home=None, service_dir=None, daemontools_bin=None, service=SEND):
    """
    Start ``service`` (qmail-send, or qmail-smtpd under tcpserver) if it is
    not running; returns its PID. With ``bootscript`` this runs
    ``<home>/supervise/qmail-send/run`` detached, as the boot script does.

    CLI Example::

        salt '*' qmail_service.start
        salt '*' qmail_service.start service=qmail-smtpd
    """
    backend = _checked(service, supervisor, home=home, service_dir=service_dir,
                       daemontools_bin=daemontools_bin)
    log.info("qmail_service: starting %s under %s", service, backend.name)
    return backend.start(service)


def restart(supervisor=None, home=None, service_dir=None, timeout=120, daemontools_bin=None,
            service=SEND):
    """
    Restart ``service`` so that it reads every control file again: TERM
    (qmail-send finishes the deliveries under way and exits; the queue stays
    on disk), then start it again. Returns the new PID.

    CLI Example::

        salt '*' qmail_service.restart
        salt '*' qmail_service.restart service=qmail-smtpd
    """
    timeout = _timeout(timeout)
    backend = _checked(service, supervisor, home=home, service_dir=service_dir,
                       daemontools_bin=daemontools_bin)
    log.info("qmail_service: restarting %s under %s", service, backend.name)
    return backend.restart(service, timeout)


def stop(supervisor=None, service_dir=None, timeout=120, daemontools_bin=None, service=SEND):
    """
    Stop ``service`` (TERM: qmail-send lets deliveries under way finish; the
    queue stays). Under daemontools its supervise exits too. Returns True
    when it was running.

    CLI Example::

        salt '*' qmail_service.stop supervisor=bootscript
    """
    _v("one_of")(service, _services(), "service")  # bootscript: stops inetd's qmail-smtpd
    timeout = _timeout(timeout)
    backend = _backend(supervisor, service_dir=service_dir, daemontools_bin=daemontools_bin)
    log.info("qmail_service: stopping %s under %s", service, backend.name)
    return backend.stop(service, timeout)


def newmrh(home=None):
    """
    Rebuild ``control/morercpthosts.cdb`` from ``control/morercpthosts``
    with qmail-newmrh (qmail-smtpd reads only the .cdb). Returns the .cdb's
    path.

    CLI Example::

        salt '*' qmail_service.newmrh
    """
    home = _home(home)
    log.info("qmail_service: %s/bin/qmail-newmrh", home)
    _run([os.path.join(home, "bin", "qmail-newmrh")], cwd=home)
    return os.path.join(home, "control", "morercpthosts.cdb")


def compile_tcp_rules(rules, ucspi_bin=None):
    """
    Compile the tcprules source ``rules`` into ``<rules>.cdb`` (atomically,
    through ``<rules>.tmp``), as qmail-smtpd's tcpserver reads it. Returns
    the .cdb's path.

    CLI Example::

        salt '*' qmail_service.compile_tcp_rules /etc/tcp.smtp
    """
    ucspi_bin = _v("path")(ucspi_bin or _setting("lookup", "service", "ucspi_bin"), "ucspi_bin")
    rules = _v("existing_file")(rules, "rules")
    with open(rules, encoding="utf-8") as handle:
        text = handle.read()
    log.info("qmail_service: tcprules %s.cdb", rules)
    _run([os.path.join(ucspi_bin, "tcprules"), f"{rules}.cdb", f"{rules}.tmp"], stdin=text)
    return f"{rules}.cdb"


def reload_inetd(missing_ok=False):
    """
    Make inetd re-read inetd.conf (SIGHUP to every process named inetd).
    Returns their PIDs. Without ``missing_ok``, raises an error when no inetd
    runs (then nothing would serve a qmail-smtpd line).

    CLI Example::

        salt '*' qmail_service.reload_inetd
        salt '*' qmail_service.reload_inetd missing_ok=True
    """
    missing_ok = missing_ok is not None and _v("boolean")(missing_ok, "missing_ok")
    inetd = _supervised_by("inetd", {})
    if not inetd.pids(SMTPD):
        if missing_ok:
            return []
        raise CommandExecutionError("no inetd is running to re-read inetd.conf")
    return inetd.signal(SMTPD, signal.SIGHUP)


# --------------------------------------------------------------------------
# The operator's view
# --------------------------------------------------------------------------
_QREAD_HEAD = re.compile(
    r"^(?P<date>\d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d) GMT  #(?P<id>\d+)  (?P<size>\d+)  "
    r"<(?P<sender>.*)> (?P<bouncing> bouncing)?$"
)
_QREAD_RCPT = re.compile(r"^(?P<done>  done)?\t(?P<channel>local|remote)\t(?P<address>.*)$")


def _parse_qread(text):
    """Messages from qmail-qread's output (see qmail-qread.c's fmtstats)."""
    messages = []
    warnings = []
    for line in text.splitlines():
        head = _QREAD_HEAD.match(line)
        if head:
            messages.append({
                "id": int(head["id"]), "date": head["date"] + " GMT",
                "size": int(head["size"]), "sender": head["sender"],
                "bouncing": bool(head["bouncing"]), "recipients": [],
            })
            continue
        rcpt = _QREAD_RCPT.match(line)
        if rcpt and messages:
            messages[-1]["recipients"].append({
                "channel": rcpt["channel"], "address": rcpt["address"],
                "done": bool(rcpt["done"]),
            })
        elif line.strip():
            warnings.append(line.strip())
    return messages, warnings


def _parse_qstat(text):
    counts = {}
    for line in text.splitlines():
        label, _, number = line.rpartition(":")
        if number.strip().isdigit():
            key = "unprocessed" if "not yet preprocessed" in label else "messages"
            counts[key] = int(number)
    if set(counts) != {"messages", "unprocessed"}:
        raise CommandExecutionError(f"unexpected qmail-qstat output: {text!r}")
    return counts


def queue_status(home=None):
    """
    The queue as data: ``messages`` and ``unprocessed`` (qmail-qstat), and
    ``queue``, one entry per message (qmail-qread): ``id``, ``date``,
    ``size``, ``sender``, ``bouncing`` and ``recipients`` (``channel``
    local/remote, ``address``, ``done``). ``warnings`` carries anything else
    qmail-qread said (e.g. trouble with a message file).

    CLI Example::

        salt '*' qmail_service.queue_status
    """
    bindir = os.path.join(_home(home), "bin")
    counts = _parse_qstat(_run(["/bin/sh", os.path.join(bindir, "qmail-qstat")]))
    messages, warnings = _parse_qread(_run([os.path.join(bindir, "qmail-qread")]))
    return {**counts, "queue": messages, "warnings": warnings}


def control_settings(home=None):
    """
    The effective control settings, as qmail-showctl shows them: for every
    control file its value and whether it is qmail's default (the file is
    absent). See ``qmail_control.showctl``.

    CLI Example::

        salt '*' qmail_service.control_settings
    """
    return __salt__["qmail_control.showctl"](home)


def status(supervisor=None, service_dir=None, daemontools_bin=None):
    """
    Whether qmail-send runs (and its PID) and whether qmail-smtpd (and
    qmail-smtpsd, implicit TLS) run under tcpserver, and qmail:filter's
    qmail-filterd, under the given supervisor.

    CLI Example::

        salt '*' qmail_service.status
    """
    backend = _backend(supervisor, service_dir=service_dir, daemontools_bin=daemontools_bin)
    result = {}
    for name in _services():
        if backend.refusal(name) is None:
            pid = backend.pid(name)
            result[name] = {"running": pid is not None, "pid": pid}
    result[SEND]["supervisor"] = backend.name
    return result


def logs(service=SEND, lines=50, supervisor=None, log_dir=None):
    """
    The last ``lines`` lines of ``service``'s log (qmail-send, qmail-smtpd,
    qmail-smtpsd, qmail-filterd), as a list of strings, oldest first: under systemd from
    the journal of its unit (``journalctl -u``; qmail-send's splogger lines
    and tcpserver's connection lines are there); under daemontools from
    multilog's ``<log_dir>/<service>/current`` and the files it rotated
    (TAI64N timestamps, as ``tai64nlocal`` reads them); with the boot script, qmail-send's syslog
    lines (``journalctl -t qmail``). The supervisor defaults to the one in
    the settings, ``log_dir`` to ``lookup:service:log_dir``.

    CLI Example::

        salt '*' qmail_service.logs qmail-smtpd lines=20 supervisor=daemontools \\
            log_dir=/var/log/qmail
    """
    _v("one_of")(service, _services(), "service")
    lines = _v("integer")(lines, "lines", 1, 100000)
    return _backend(supervisor, log_dir=log_dir).logs(service, lines)
