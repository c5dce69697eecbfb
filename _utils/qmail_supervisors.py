"""
The supervisors qmail's services run under (``__utils__``): one class per
supervisor, all with the same small interface, chosen once by
``backend(supervisor, ...)`` from the settings. Callers (the
``qmail_service`` execution and state modules) never branch on the
supervisor; what differs lives here, one class each:

- ``systemd``: units ``<service>.service`` through ``systemctl``;
- ``daemontools``: ``svc``/``svok``/``svstat`` on ``<service_dir>/<service>``
  (a link to ``<home>/supervise/<service>``), multilog in ``log/``;
- ``bootscript``: the seed's ``<home>/rc &`` from a boot script, found by
  name in the process table (qmail-smtpd runs from inetd there);
- ``inetd``: the inetd that runs qmail-smtpd per connection; only told to
  re-read inetd.conf (HUP), it is the system's to start and stop.

The interface: ``pids``/``pid`` (None when not running), ``start``,
``stop``, ``restart``, ``signal``, ``enabled``/``enable`` (None: boot is
the SLS's files), ``dead_changes``/``make_dead`` (what ``dead`` undoes),
``restart_log`` (multilog) and ``logs``; ``refusal``/``check`` say which
services it runs. The loader gives ``_utils`` modules no ``__salt__``: the
caller passes ``cmd.run_all``, the process look-ups of ``qmail_procs``,
whether systemd runs the host (``salt.utils.systemd.booted``) and a
``path(key)`` giving ``home``, ``service_dir``, ``daemontools_bin`` and
``log_dir`` (asked for only when needed, once).
"""

import logging
import os
import re
import signal
import subprocess
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

SEND = "qmail-send"
SMTPD = "qmail-smtpd"
SMTPSD = "qmail-smtpsd"  # implicit TLS (qmail:tls:smtps)
FILTERD = "qmail-filterd"  # qmail:filter's chain
SERVICES = (SEND, SMTPD, SMTPSD, FILTERD)


def _until(check, timeout, interval):
    """Call ``check`` every ``interval`` s until it returns something true
    (returned), or None once ``timeout`` s have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def tail(path, lines):
    """The last ``lines`` lines of file ``path`` (read from its end)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        block, data = 65536, b""
        while size > 0 and data.count(b"\n") <= lines:
            step = min(block, size)
            size -= step
            handle.seek(size)
            data = handle.read(step) + data
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


class Supervisor:
    """What every supervisor offers; the defaults suit those that run a
    service as a plain process (signals straight to its PID)."""

    name = ""
    services = SERVICES  # the services it can run
    multilog = False  # each service with a log service of its own

    def __init__(self, run_all, pids_named, alive, booted, path, units=None):
        # units: a state run's snapshot, for a supervisor that keeps one (Systemd)
        self._units = units
        self._run_all = run_all
        self._pids_named = pids_named
        self._alive = alive
        self.booted = booted
        self._resolve = path
        self._paths = {}

    # -- plumbing ----------------------------------------------------------
    def path(self, key):
        if key not in self._paths:
            self._paths[key] = self._resolve(key)
        return self._paths[key]

    def run(self, argv, check=True, **kwargs):
        """``argv`` (a list: no shell sees a value) through the caller's
        cmd.run_all; with ``check``, a failure raises. Returns the result."""
        proc = self._run_all(argv, python_shell=False, ignore_retcode=not check, **kwargs)
        if check and proc["retcode"] != 0:
            said = proc["stderr"].strip() or proc["stdout"].strip()
            raise CommandExecutionError(f"{' '.join(argv)} failed ({proc['retcode']}): {said}")
        return proc

    def wait_gone(self, pid, timeout):
        return _until(lambda: not self._alive(pid), timeout, 0.1) is not None

    def wait_new_pid(self, old, service, timeout):
        def new_pid():
            pid = self.pid(service)
            return pid if pid and pid != old else None

        pid = _until(new_pid, timeout, 0.2)
        if pid is None:
            raise CommandExecutionError(f"{service} did not come back within {timeout} s")
        return pid

    # -- the interface -------------------------------------------------------
    def refusal(self, service):
        """Why ``service`` cannot run under this supervisor, or None."""
        if service not in self.services:
            return f"{service} has no supervisor under {self.name}"
        return None

    def check(self, service):
        """Raise when ``service`` cannot run here (SaltInvocationError: a
        wrong argument; CommandExecutionError: a wrong host)."""
        why = self.refusal(service)
        if why:
            raise SaltInvocationError(why)

    def pids(self, service):
        """The PIDs of ``service`` (its main process), [] when it is down."""
        raise NotImplementedError

    def pid(self, service):
        pids = self.pids(service)
        return pids[0] if pids else None

    def start(self, service, timeout=30):
        """Start ``service`` unless it runs; returns its PID."""
        raise NotImplementedError

    def stop(self, service, timeout=120):
        """Stop ``service`` (TERM); returns whether it was running."""
        raise NotImplementedError

    def restart(self, service, timeout=120):
        """TERM and start again (or start); returns the new PID."""
        raise NotImplementedError

    def signal(self, service, sig):
        """Send ``sig`` to ``service``'s process(es); returns their PIDs."""
        pids = self.pids(service)
        if not pids:
            raise CommandExecutionError(f"{service} is not running (supervisor {self.name})")
        for pid in pids:
            log.info("qmail_supervisors: signal %s to %s (pid %s)", sig, service, pid)
            os.kill(pid, sig)
        return pids

    def enabled(self, service):
        """Whether ``service`` starts at boot; None where boot is the SLS's
        files (the service directory's link, the boot script)."""
        return None

    def enable(self, service):
        """Start ``service`` at boot; returns whether that changed anything."""
        return False

    def dead_changes(self, service):
        """What ``dead`` would change (state ``changes``), and a note when
        nothing: ``({}, "why")``."""
        return ({"running": {"old": True, "new": False}}, None) if self.pids(service) \
            else ({}, None)

    def make_dead(self, service, changes):
        """Do what ``dead_changes`` predicted."""
        if "running" in changes:
            self.stop(service)

    def restart_log(self, service):
        """Restart ``service``'s multilog (``multilog``): True, or False when
        it does not run yet."""
        return False

    def logs(self, service, lines):
        """The last ``lines`` lines of ``service``'s log, oldest first."""
        raise CommandExecutionError(f"{service} keeps no log under {self.name}")

    def journal(self, which, lines):
        if not self.booted:
            raise CommandExecutionError("systemd does not run this host: no journal to read")
        out = self.run(["journalctl", "--no-pager", "--quiet", "-o", "short-iso", "-n",
                        str(lines), *which])["stdout"]
        return out.splitlines()


class Systemd(Supervisor):
    """Units ``<service>.service``; its MainPID is the service's PID.

    ``units``: a state run's snapshot (a dict the caller keeps for the run),
    so the run's states ask ``systemctl show`` once for all of qmail's units
    instead of once each (issue 21's converged cost). Only what the states
    decide on is read from it; each action (start, stop, restart, enable,
    disable, daemon-reload) reads afresh, and empties the snapshot for the
    states after it."""

    name = "systemd"
    PROPERTIES = "Id,LoadState,ActiveState,UnitFileState,MainPID,NeedDaemonReload"

    def unit(self, service):
        """LoadState, ActiveState, UnitFileState, MainPID, NeedDaemonReload."""
        if self._units is None:
            return self._show([service])[service]
        if service not in self._units:
            self._units.update(self._show(sorted(set(self.services) | {service})))
        return dict(self._units[service])

    def _show(self, services):
        """{service: its properties}, in one ``systemctl show`` (a block per
        unit, in the order asked, each naming its ``Id``)."""
        out = self.run(["systemctl", "show", *(f"{s}.service" for s in services),
                        f"--property={self.PROPERTIES}"])["stdout"]
        blocks = out.strip().split("\n\n")
        if len(blocks) != len(services):
            raise CommandExecutionError(f"systemctl show answered {len(blocks)} blocks for "
                                        f"{len(services)} units: {', '.join(services)}")
        found = {}
        for service, block in zip(services, blocks):  # noqa: B905 (lengths checked above)
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if props.pop("Id", f"{service}.service") != f"{service}.service":
                raise CommandExecutionError(f"systemctl show: the block for {service} "
                                            f"names another unit\n{block}")
            props["MainPID"] = int(props.get("MainPID") or 0)
            found[service] = props
        return found

    def _acting(self):
        """From here on this backend reads afresh, and the run's states after
        it take a new snapshot: what it does changes what systemd says."""
        if self._units is not None:
            self._units.clear()
            self._units = None

    def check(self, service):
        super().check(service)
        self._require_booted(service)

    def _require_booted(self, service):
        if not self.booted:
            raise CommandExecutionError(f"supervisor systemd: systemd does not run this host; "
                                        f"{service} cannot run under it")

    def pids(self, service):
        if not self.booted:
            return []  # nothing runs under it, whatever systemctl says
        pid = self.unit(service)["MainPID"]
        return [pid] if pid else []

    def signal(self, service, sig):
        self._acting()  # the PID systemd gives now
        return super().signal(service, sig)

    def _systemctl(self, verb, service):
        self._acting()
        log.info("qmail_supervisors: systemctl %s %s.service", verb, service)
        self.run(["systemctl", verb, f"{service}.service"])

    def _daemon_reload_if_needed(self, service):
        """systemd reads a new or changed unit file only after daemon-reload."""
        self._acting()  # a unit file written since the snapshot needs it
        unit = self.unit(service)
        if unit.get("NeedDaemonReload") == "yes" or unit.get("LoadState") == "not-found":
            log.info("qmail_supervisors: systemctl daemon-reload (unit %s changed)", service)
            self.run(["systemctl", "daemon-reload"])

    def start(self, service, timeout=30):
        self._acting()
        pid = self.pid(service)
        if pid:
            return pid
        self._daemon_reload_if_needed(service)
        self._systemctl("start", service)
        return self.wait_new_pid(None, service, timeout)

    def restart(self, service, timeout=120):
        self._acting()
        old = self.pid(service)
        self._daemon_reload_if_needed(service)
        self._systemctl("restart", service)
        return self.wait_new_pid(old, service, timeout)

    def stop(self, service, timeout=120):
        if not self.booted:
            return False
        self._acting()
        running = self.pid(service) is not None
        self._systemctl("stop", service)
        return running

    def enabled(self, service):
        self._require_booted(service)
        return self.unit(service).get("UnitFileState") == "enabled"

    def enable(self, service):
        if self.enabled(service):
            return False
        self._systemctl("enable", service)
        return True

    def dead_changes(self, service):
        if not self.booted:
            return {}, "systemd does not run this host: nothing to stop"
        unit = self.unit(service)
        if unit.get("LoadState") == "not-found":
            return {}, f"{service}.service is not known to systemd"
        changes = {}
        if unit.get("ActiveState") in ("active", "activating", "reloading"):
            changes["running"] = {"old": True, "new": False}
        if unit.get("UnitFileState") == "enabled":
            changes["enabled"] = {"old": True, "new": False}
        return changes, None

    def make_dead(self, service, changes):
        if "running" in changes:
            self.stop(service)
        if "enabled" in changes:
            self._systemctl("disable", service)

    def logs(self, service, lines):
        return self.journal(["-u", f"{service}.service"], lines)


class Daemontools(Supervisor):
    """supervise runs ``<service_dir>/<service>``; svc tells it what to do."""

    name = "daemontools"
    multilog = True
    FLAGS = {signal.SIGHUP: "-h", signal.SIGALRM: "-a", signal.SIGTERM: "-t",
             signal.SIGINT: "-i", signal.SIGKILL: "-k", signal.SIGUSR1: "-1",
             signal.SIGUSR2: "-2", signal.SIGSTOP: "-p", signal.SIGCONT: "-c"}

    def _bin(self, name):
        return os.path.join(self.path("daemontools_bin"), name)

    def _dir(self, service):
        return os.path.join(self.path("service_dir"), service)

    def _svc(self, flag, folder):
        log.info("qmail_supervisors: svc %s %s", flag, folder)
        self.run([self._bin("svc"), flag, folder])

    def _supervised(self, folder):
        """Whether a supervise runs for ``folder`` (svok)."""
        return self.run([self._bin("svok"), folder], check=False)["retcode"] == 0

    def pids(self, service):
        out = self.run([self._bin("svstat"), self._dir(service)], check=False)["stdout"]
        match = re.search(r": up \(pid (\d+)\)", out)
        return [int(match.group(1))] if match else []

    def start(self, service, timeout=30):
        pid = self.pid(service)
        if pid:
            return pid
        folder = self._dir(service)
        # svscan looks for new services every 5 s
        if _until(lambda: self._supervised(folder), 30, 0.5) is None:
            raise CommandExecutionError(f"supervise is not running for {folder} after 30 s")
        self._svc("-u", folder)
        return self.wait_new_pid(None, service, timeout)

    def restart(self, service, timeout=120):
        old = self.pid(service)
        if old is None:
            return self.start(service)
        self._svc("-t", self._dir(service))  # supervise starts it again
        return self.wait_new_pid(old, service, timeout)

    def stop(self, service, timeout=120):
        folder = self._dir(service)
        if not os.path.exists(folder):
            return False
        pid = self.pid(service)
        self._svc("-dx", folder)  # its supervise exits too
        if pid:
            self.wait_gone(pid, timeout)
        return pid is not None

    def signal(self, service, sig):
        pid = self.pid(service)
        if pid is None:
            raise CommandExecutionError(f"{service} is not running (supervisor {self.name})")
        self._svc(self.FLAGS[sig], self._dir(service))
        return [pid]

    def dead_changes(self, service):
        changes = {}
        link = self._dir(service)
        if os.path.lexists(link):
            changes["link"] = {"old": link, "new": None}
        if os.access(self._bin("svok"), os.X_OK):
            for key, folder in self._supervise_folders(service):
                if os.path.isdir(folder) and self._supervised(folder):
                    changes[key] = {"old": True, "new": False}
        return changes, None

    def make_dead(self, service, changes, timeout=120):
        if "link" in changes:
            os.unlink(changes["link"]["old"])  # svscan starts no new supervise for it
        # The service, then its log (daemontools' removal recipe, `svc -dx .
        # log`), each until its supervise has exited: the service's last lines
        # reach the log, and nothing is left for whoever stops svscan to kill
        # (systemd waits for the unit's cgroup to empty; where its notice of
        # that is lost, as in containers on cgroup v1, it waits TimeoutStopSec).
        for key, folder in self._supervise_folders(service):
            if key in changes:
                self._svc("-dx", folder)
                self._wait_unsupervised(folder, timeout)

    def _supervise_folders(self, service):
        """(change key, folder) of the service's supervise and its log's."""
        folder = os.path.join(self.path("home"), "supervise", service)
        return (("running", folder), ("log_running", os.path.join(folder, "log")))

    def _wait_unsupervised(self, folder, timeout):
        """Until no supervise runs for ``folder`` (qmail-send may take a
        while: TERM lets deliveries under way finish). False at ``timeout``."""
        if _until(lambda: not self._supervised(folder), timeout, 0.1) is None:
            log.warning("qmail_supervisors: supervise still runs for %s after %s s",
                        folder, timeout)
            return False
        return True

    def restart_log(self, service):
        folder = os.path.join(self._dir(service), "log")
        if not self._supervised(folder):
            return False  # not supervised yet: svscan starts it with the new run script
        self._svc("-t", folder)
        return True

    def logs(self, service, lines):
        """multilog's ``current``, then the files it rotated (``@<TAI64N>``:
        their names sort by time), newest first, until there are lines enough."""
        folder = os.path.join(self.path("log_dir"), service)
        if not os.path.isfile(os.path.join(folder, "current")):
            raise CommandExecutionError(f"{folder}/current does not exist: no multilog for "
                                        f"{service} here")
        rotated = sorted((n for n in os.listdir(folder) if n.startswith("@")), reverse=True)
        found = []
        for name in ["current", *rotated]:
            try:
                found = tail(os.path.join(folder, name), lines - len(found)) + found
            except FileNotFoundError:  # rotated away meanwhile
                continue
            if len(found) >= lines:
                break
        return found


class Bootscript(Supervisor):
    """The seed's way: the boot script runs ``<home>/supervise/<service>/run``
    in the background; the service is found by its process name."""

    name = "bootscript"
    services = (SEND,)

    def refusal(self, service):
        if service not in self.services:
            return f"{service} has no supervisor with the boot script: inetd runs it"
        return None

    def pids(self, service):
        return self._pids_named(service)

    def start(self, service, timeout=30):
        pid = self.pid(service)
        if pid:
            return pid
        run = os.path.join(self.path("home"), "supervise", service, "run")
        # As the boot script does: `run &` from a shell that exits at once, so
        # the service's parent becomes init (which reaps it), not this minion.
        # subprocess, not cmd.run_bg: it needs a session of its own, so that
        # nothing aimed at the minion's process group reaches it. The path is
        # an argument of the shell ($1), never part of its code.
        log.info("qmail_supervisors: starting %s from %s", service, run)
        subprocess.run(["/bin/sh", "-c", '/bin/sh "$1" </dev/null >/dev/null 2>&1 &',
                        "qmail-rc", run], check=True, start_new_session=True, close_fds=True)
        return self.wait_new_pid(None, service, timeout)

    def restart(self, service, timeout=120):
        old = self.pid(service)
        if old is None:
            return self.start(service)
        log.info("qmail_supervisors: TERM to %s (pid %s) for a restart", service, old)
        os.kill(old, signal.SIGTERM)
        if not self.wait_gone(old, timeout):
            raise CommandExecutionError(f"{service} (pid {old}) did not exit within {timeout} s")
        return self.start(service)

    def stop(self, service, timeout=120):
        """TERM to every process named ``service`` (qmail-smtpd: inetd's)."""
        pids = self.pids(service)
        for pid in pids:
            log.info("qmail_supervisors: TERM to %s (pid %s)", service, pid)
            os.kill(pid, signal.SIGTERM)
        for pid in pids:
            self.wait_gone(pid, timeout)
        return bool(pids)

    def logs(self, service, lines):
        if service != SEND:
            raise CommandExecutionError(f"{service} runs from inetd with the boot script: "
                                        "inetd keeps no log of it")
        return self.journal(["-t", "qmail"], lines)  # rc's splogger tag


class Inetd(Supervisor):
    """inetd runs qmail-smtpd per connection; the formula only tells it to
    re-read inetd.conf (HUP). Its PIDs are inetd's."""

    name = "inetd"
    services = (SMTPD,)

    def pids(self, service):
        return self._pids_named("inetd")

    def _not_ours(self, service, *_):
        raise CommandExecutionError(f"inetd runs {service}: the system starts and stops "
                                    "inetd, the formula only tells it to re-read inetd.conf")

    start = stop = restart = _not_ours


BACKENDS = {cls.name: cls for cls in (Systemd, Daemontools, Bootscript, Inetd)}
# What qmail:service:supervisor may name: the backends that keep qmail-send
# running (inetd runs qmail-smtpd only).
SUPERVISORS = ("systemd", "daemontools", "bootscript")


def services():
    """qmail's services a supervisor may run: the one list ``qmail_service``
    (module and states) checks a service name against."""
    return SERVICES


def supervisors():
    """The values of ``qmail:service:supervisor``: the one list the settings
    and ``qmail_service`` check against."""
    return SUPERVISORS


def backend(supervisor, run_all, pids_named, alive, booted, path, units=None):
    """
    The supervisor called ``supervisor``, chosen once: ``run_all`` is the
    caller's ``cmd.run_all``, ``pids_named``/``alive`` those of
    ``qmail_procs``, ``booted`` whether systemd runs this host
    (``salt.utils.systemd.booted``), ``path(key)`` gives a path setting;
    ``units`` (systemd) the state run's snapshot of qmail's units (a dict
    kept for the run; see ``Systemd``).
    """
    if supervisor not in BACKENDS:
        raise SaltInvocationError(f"supervisor: {supervisor!r} is not one of "
                                  f"{', '.join(BACKENDS)}")
    return BACKENDS[supervisor](run_all, pids_named, alive, booted, path, units=units)
