"""
Process look-ups shared by the formula's execution modules (``__utils__``):
finding processes by name, program or listening port, and whether one runs.

Only this host's processes count. On a machine that runs containers, /proc
also lists the processes of their PID namespaces (a container's sendmail,
its qmail-send, its inetd): a state applied to the machine must never stop
or signal those. A process is ours when it sits in no deeper PID namespace
than ours.
"""

import functools
import logging
import os
import subprocess

try:  # a Salt requirement; IRIX has no build of it
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

log = logging.getLogger(__name__)


def _namespace_depth(pid):
    """How many PID namespaces ``pid`` is seen in, counted from the one of
    this /proc: the length of the NSpid line of its status, which anyone may
    read (unlike /proc/PID/ns/pid, which root in a container cannot read for
    another user's process). None where the kernel has no NSpid (< 4.1)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("NSpid:"):
                    return len(line.split()) - 1
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=1)
def _own_depth():
    """Ours, read once: a process does not change its PID namespace."""
    return _namespace_depth("self")


def is_own(pid):
    """Whether ``pid`` sits in this process's PID namespace (not in a
    container's): its NSpid is no longer than ours."""
    mine = _own_depth()
    return mine is None or _namespace_depth(pid) == mine


def all_pids():
    """Every PID the kernel lists (psutil), containers' included: filter what
    matches with ``is_own`` (cheaper than reading every process's status
    first)."""
    if psutil is not None:
        return sorted(psutil.pids())
    return sorted(int(entry) for entry in os.listdir("/proc") if entry.isdigit())


def own_pids():
    """PIDs (Linux /proc) of the processes in this process's PID namespace."""
    return [pid for pid in all_pids() if is_own(pid)]


def comm(pid):
    """The command name of ``pid`` ('' when it is gone): the kernel's comm,
    as ps and pgrep show it (psutil's ``name()`` may swap a long one for
    the program's file name)."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def exe(pid):
    """The program ``pid`` runs, or None when it cannot be read (gone, or a
    set-id program that is not dumpable where root lacks CAP_SYS_PTRACE)."""
    if psutil is not None:
        try:
            path = psutil.Process(pid).exe()
        except (psutil.Error, OSError):
            return None
        return path.removesuffix(" (deleted)") or None
    try:
        path = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return path.removesuffix(" (deleted)")


def _has_proc():
    return os.path.isdir("/proc/self")


def alive(pid):
    """Whether ``pid`` runs: it exists and is not a zombie waiting for its
    parent (without psutil and /proc, as on IRIX, a zombie counts as alive)."""
    if psutil is not None:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:
            return True
    if _has_proc():
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                return handle.read().rpartition(")")[2].split()[0] != "Z"
        except FileNotFoundError:
            return False
        except OSError:
            pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pids_named(name):
    """PIDs of this host's running processes whose command name is ``name``.
    Without /proc (FreeBSD, IRIX) from POSIX ``ps -A`` (``-A``: every
    process on both; FreeBSD's ``-e`` would mean "environment")."""
    if _has_proc():
        return [pid for pid in all_pids()
                if comm(pid) == name and is_own(pid) and alive(pid)]
    if psutil is not None:  # FreeBSD: no /proc, psutil asks the kernel
        return sorted(p.pid for p in psutil.process_iter(["name", "status"])
                      if p.info["name"] == name and p.info["status"] != psutil.STATUS_ZOMBIE)
    out = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "stat=", "-o", "comm="],
                         capture_output=True, text=True, check=False).stdout
    pids = []
    for line in out.splitlines():
        pid, stat, command = (line.split(None, 2) + ["", ""])[:3]
        if os.path.basename(command.strip()) == name and not stat.startswith("Z"):
            pids.append(int(pid))
    return sorted(pids)


def listeners(ports):
    """This host's processes listening on TCP ``ports`` (a set): a list of
    ``{port, pid, comm, exe}`` by port and PID (empty without psutil)."""
    found = []
    if psutil is None:
        return found
    # psutil maps this network namespace's listening sockets to their PIDs
    # (all of them: the minion runs as root); containers' are left out by
    # is_own, as everywhere.
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports \
                and conn.pid and is_own(conn.pid):
            found.append({"port": conn.laddr.port, "pid": conn.pid,
                          "comm": comm(conn.pid), "exe": exe(conn.pid)})
    return sorted(found, key=lambda x: (x["port"], x["pid"]))


def programs(binaries, prefix, ports, run_stdout):
    """
    This host's running processes of a program: those whose program is one
    of the files ``binaries``, and those whose command name starts with
    ``prefix`` and whose program cannot be read (a set-id program is not
    dumpable: without CAP_SYS_PTRACE, e.g. in a container, even root cannot
    read its /proc/PID/exe) or that listen on ``ports``. A list of
    ``{pid, comm, exe}`` by PID (exe None when unreadable). Without /proc
    (FreeBSD, IRIX) by command name only, from POSIX ``ps -A`` run through
    ``run_stdout`` (the caller's ``cmd.run_stdout``).
    """
    found = {}
    if _has_proc():
        named = False
        for pid in all_pids():
            path = exe(pid)
            name = comm(pid)
            named = named or name.startswith(prefix)
            if ((path in binaries) if path else name.startswith(prefix)) and \
                    is_own(pid) and alive(pid):
                found[pid] = {"pid": pid, "comm": name, "exe": path}
        # Listeners only add processes named <prefix>*: with none running (a
        # converged host) the socket table need not be read at all.
        for entry in listeners(ports) if named else ():
            if entry["comm"].startswith(prefix):
                found.setdefault(entry["pid"], {k: entry[k] for k in ("pid", "comm", "exe")})
    else:
        # -A is every process on both (FreeBSD's -e would mean "environment").
        out = run_stdout(["ps", "-A", "-o", "pid=", "-o", "comm="],
                         python_shell=False, ignore_retcode=True)
        for line in out.splitlines():
            pid, _, name = line.strip().partition(" ")
            if pid.isdigit() and os.path.basename(name.strip()).startswith(prefix):
                found[int(pid)] = {"pid": int(pid), "comm": name.strip(), "exe": None}
    return [found[pid] for pid in sorted(found)]
