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
supervisor runs it, so the supervisor never sees a crash.
"""

import os
import re
import signal
import subprocess
import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "qmail_service"

SUPERVISORS = ("systemd", "daemontools", "bootscript")
SMTPD_MODES = ("tcpserver", "inetd")
SEND = "qmail-send"
SMTPD = "qmail-smtpd"
DEFAULT_HOME = "/var/qmail"



def __virtual__():
    return __virtualname__


def tcp_rules(relay_clients, key="qmail:relay_clients"):
    """
    Turn ``relay_clients`` (IPv4 addresses or networks in CIDR notation)
    into the lines of a tcprules source for qmail-smtpd: one
    ``<prefix>:allow,RELAYCLIENT=""`` per client network, then ``:allow``
    for everyone else (who may only send to ``rcpthosts``). tcprules knows
    dotted prefixes (``10.1.``) and ranges in the last octet
    (``10.1.2.0-127``), so other prefix lengths are spelt with those.

    CLI Example::

        salt '*' qmail_service.tcp_rules '[10.1.2.0/24, 192.168.5.7]'
    """
    prefixes = []
    for net in __utils__["qmail_validate.relay_networks"](relay_clients, key):
        for prefix in _tcprules_prefixes(net):
            if prefix not in prefixes:
                prefixes.append(prefix)
    return [f'{prefix}:allow,RELAYCLIENT=""' for prefix in prefixes] + [":allow"]


def _tcprules_prefixes(net):
    """The tcprules spellings of one IPv4 network."""
    octets = str(net.network_address).split(".")
    length = net.prefixlen
    if length == 32:
        return [str(net.network_address)]
    if length % 8 == 0:
        return [".".join(octets[: length // 8]) + "."]
    if length > 24:
        last = int(octets[3])
        return [".".join(octets[:3]) + f".{last}-{last + net.num_addresses - 1}"]
    # Split into the next whole-octet networks (/16 or /24).
    whole = (length // 8 + 1) * 8
    return [p for sub in net.subnets(new_prefix=whole) for p in _tcprules_prefixes(sub)]


# --------------------------------------------------------------------------
# Finding and signalling qmail-send
# --------------------------------------------------------------------------
def _config(key, default):
    return __salt__["config.get"](f"qmail:{key}", default) or default


def _supervisor(supervisor):
    supervisor = supervisor or _config("service:supervisor", "systemd")
    __utils__["qmail_validate.one_of"](supervisor, SUPERVISORS, "supervisor")
    return supervisor


def _service_dir(service_dir):
    return __utils__["qmail_validate.path"](
        service_dir or _config("lookup:service:service_dir", "/etc/service"), "service_dir")


def _daemontools_bin(name):
    return os.path.join(_config("lookup:service:daemontools_bin", "/usr/bin"), name)


def _run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        said = proc.stderr.strip() or proc.stdout.strip()
        raise CommandExecutionError(f"{' '.join(argv)} failed ({proc.returncode}): {said}")
    return proc.stdout


def _alive(pid):
    return __utils__["qmail_procs.alive"](pid)


def _pids_named(name):
    """This host's PIDs of processes named ``name`` (not those of containers)."""
    return __utils__["qmail_procs.pids_named"](name)


def send_pid(supervisor=None, service_dir=None):
    """
    Return the PID of qmail-send as its supervisor knows it, or None when it
    is not running.

    CLI Example::

        salt '*' qmail_service.send_pid
        salt '*' qmail_service.send_pid supervisor=daemontools
    """
    supervisor = _supervisor(supervisor)
    if supervisor == "systemd":
        out = _run(["systemctl", "show", "--property=MainPID", "--value", f"{SEND}.service"])
        pid = int(out.strip() or 0)
        return pid or None
    if supervisor == "daemontools":
        path = os.path.join(_service_dir(service_dir), SEND)
        proc = subprocess.run([_daemontools_bin("svstat"), path], capture_output=True,
                              text=True, check=False)
        match = re.search(r": up \(pid (\d+)\)", proc.stdout)
        return int(match.group(1)) if match else None
    pids = _pids_named(SEND)
    return pids[0] if pids else None


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


def _signal(sig, supervisor, service_dir):
    """Send ``sig`` to qmail-send alone (not to its helpers); return its PID."""
    supervisor = _supervisor(supervisor)
    pid = send_pid(supervisor, service_dir)
    if pid is None:
        raise CommandExecutionError(f"{SEND} is not running (supervisor {supervisor})")
    if sig != signal.SIGTERM:
        _wait_ready(pid, sig)
    if supervisor == "daemontools":
        flag = {signal.SIGHUP: "-h", signal.SIGALRM: "-a", signal.SIGTERM: "-t"}[sig]
        _run([_daemontools_bin("svc"), flag, os.path.join(_service_dir(service_dir), SEND)])
    else:
        os.kill(pid, sig)
    return pid


def hup(supervisor=None, service_dir=None):
    """
    Make qmail-send re-read ``locals`` and ``virtualdomains`` (SIGHUP); it
    keeps running with the same PID. Returns that PID.

    CLI Example::

        salt '*' qmail_service.hup
    """
    return _signal(signal.SIGHUP, supervisor, service_dir)


def flush(supervisor=None, service_dir=None):
    """
    Make qmail-send retry every queued message now (SIGALRM), as
    ``qmail-tcpok; svc -a`` does. Returns qmail-send's PID.

    CLI Example::

        salt '*' qmail_service.flush
    """
    return _signal(signal.SIGALRM, supervisor, service_dir)


def _wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _wait_new_pid(old, supervisor, service_dir, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = send_pid(supervisor, service_dir)
        if pid and pid != old:
            return pid
        time.sleep(0.2)
    raise CommandExecutionError(f"{SEND} did not come back within {timeout} s")


def _wait_supervise(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run([_daemontools_bin("svok"), path], check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise CommandExecutionError(f"supervise is not running for {path} after {timeout} s")


def start(supervisor=None, home=None, service_dir=None):
    """
    Start qmail-send if it is not running; returns its PID. With
    ``bootscript`` this runs ``<home>/supervise/qmail-send/run`` detached,
    as the boot script does.

    CLI Example::

        salt '*' qmail_service.start
    """
    supervisor = _supervisor(supervisor)
    pid = send_pid(supervisor, service_dir)
    if pid:
        return pid
    if supervisor == "systemd":
        __salt__["service.start"](SEND)
    elif supervisor == "daemontools":
        path = os.path.join(_service_dir(service_dir), SEND)
        _wait_supervise(path, 30)  # svscan looks for new services every 5 s
        _run([_daemontools_bin("svc"), "-u", path])
    else:
        run = os.path.join(home or _config("lookup:home", DEFAULT_HOME), "supervise", SEND, "run")
        # As the boot script does: `run &` from a shell that exits at once, so
        # qmail-send's parent becomes init (which reaps it), not this minion.
        subprocess.run(["/bin/sh", "-c", f"/bin/sh {run} </dev/null >/dev/null 2>&1 &"],
                       check=True, start_new_session=True, close_fds=True)
    return _wait_new_pid(None, supervisor, service_dir, 30)


def restart(supervisor=None, home=None, service_dir=None, timeout=120):
    """
    Restart qmail-send so that it reads every control file again: TERM
    (qmail-send finishes the deliveries under way and exits; the queue stays
    on disk), then start it again. Returns the new PID.

    CLI Example::

        salt '*' qmail_service.restart
    """
    supervisor = _supervisor(supervisor)
    if supervisor == "systemd":
        old = send_pid(supervisor)
        if not __salt__["service.restart"](SEND):
            raise CommandExecutionError(f"systemctl restart {SEND} failed")
        return _wait_new_pid(old, supervisor, service_dir, timeout)
    old = send_pid(supervisor, service_dir)
    if old is None:
        return start(supervisor, home, service_dir)
    if supervisor == "daemontools":
        _signal(signal.SIGTERM, supervisor, service_dir)  # supervise starts it again
        return _wait_new_pid(old, supervisor, service_dir, timeout)
    os.kill(old, signal.SIGTERM)
    if not _wait_gone(old, timeout):
        raise CommandExecutionError(f"{SEND} (pid {old}) did not exit within {timeout} s")
    return start(supervisor, home, service_dir)


def stop(supervisor=None, service_dir=None, timeout=120):
    """
    Stop qmail-send (TERM: deliveries under way finish; the queue stays).
    Returns True when it was running.

    CLI Example::

        salt '*' qmail_service.stop supervisor=bootscript
    """
    supervisor = _supervisor(supervisor)
    if supervisor == "systemd":
        running = send_pid(supervisor) is not None
        __salt__["service.stop"](SEND)
        return running
    if supervisor == "daemontools":
        path = os.path.join(_service_dir(service_dir), SEND)
        if not os.path.exists(path):
            return False
        pid = send_pid(supervisor, service_dir)
        _run([_daemontools_bin("svc"), "-dx", path])
        if pid:
            _wait_gone(pid, timeout)
        return pid is not None
    pids = _pids_named(SEND)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for pid in pids:
        _wait_gone(pid, timeout)
    return bool(pids)


def reload_inetd(missing_ok=False):
    """
    Make inetd re-read inetd.conf (SIGHUP to every process named inetd).
    Returns their PIDs. Without ``missing_ok``, raises an error when no inetd
    runs (then nothing would serve a qmail-smtpd line).

    CLI Example::

        salt '*' qmail_service.reload_inetd
        salt '*' qmail_service.reload_inetd missing_ok=True
    """
    pids = _pids_named("inetd")
    if not pids and not missing_ok:
        raise CommandExecutionError("no inetd is running to re-read inetd.conf")
    for pid in pids:
        os.kill(pid, signal.SIGHUP)
    return pids


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
    bindir = os.path.join(home or _config("lookup:home", DEFAULT_HOME), "bin")
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


def status(supervisor=None, service_dir=None):
    """
    Whether qmail-send runs (and its PID) and whether the qmail-smtpd
    service is active, under the given supervisor.

    CLI Example::

        salt '*' qmail_service.status
    """
    supervisor = _supervisor(supervisor)
    pid = send_pid(supervisor, service_dir)
    result = {SEND: {"running": pid is not None, "pid": pid, "supervisor": supervisor}}
    if supervisor == "systemd":
        result[SMTPD] = {"running": bool(__salt__["service.status"](SMTPD))}
    elif supervisor == "daemontools":
        path = os.path.join(_service_dir(service_dir), SMTPD)
        proc = subprocess.run([_daemontools_bin("svstat"), path], capture_output=True,
                              text=True, check=False)
        result[SMTPD] = {"running": ": up (pid" in proc.stdout}
    return result
