"""
_utils/qmail_procs.py through Salt's loader, with real processes: a process
of this host is found by its name or program; the same program running in
another PID namespace (as inside a container on this machine) is not, so
neither qmail.sendmail nor qmail.service ever stops or signals it.
"""

import os
import shutil
import subprocess
import time
import uuid

import pytest


@pytest.fixture
def utils(loaders):
    return loaders.utils


def wait_for_pids(name, count, timeout=60):
    """Every PID in /proc (all namespaces) whose command name is ``name``."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/comm", encoding="utf-8") as handle:
                    if handle.read().strip() == name:
                        found.append(int(entry))
            except OSError:
                continue
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found)
        time.sleep(0.05)


@pytest.fixture
def two_namespaces(tmp_path):
    """The same program (named like a daemon) running here and in a new PID
    namespace: (program, name, pid here, pid of the other as /proc shows it)."""
    program = tmp_path / f"qp-{uuid.uuid4().hex[:12]}"  # a name no other process has
    shutil.copy("/bin/sleep", program)
    here = subprocess.Popen([str(program), "300"])
    there = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc",
                              str(program), "300"], stderr=subprocess.PIPE)
    try:
        pids = wait_for_pids(program.name, 2)
        if len(pids) < 2:
            there.kill()
            pytest.skip("unshare cannot make a PID namespace here: "
                        + there.communicate(timeout=5)[1].decode().strip())
        (other,) = [p for p in pids if p != here.pid]
        yield program, program.name, here.pid, other
    finally:
        for proc in (here, there):
            proc.kill()
            proc.wait()
        subprocess.run(["pkill", "-KILL", "-f", str(program)], check=False)


def test_own_pids_are_this_namespaces(utils, two_namespaces):
    _, _, here, other = two_namespaces
    pids = utils["qmail_procs.own_pids"]()
    assert os.getpid() in pids and here in pids
    assert other not in pids


def test_a_process_is_found_by_name_but_not_in_a_container(utils, two_namespaces):
    _, name, here, _ = two_namespaces
    assert utils["qmail_procs.pids_named"](name) == [here]
    assert utils["qmail_procs.pids_named"]("no-such-command-here") == []


def test_program_and_name_of_a_process(utils, two_namespaces):
    program, name, here, _ = two_namespaces
    assert utils["qmail_procs.exe"](here) == str(program)
    assert utils["qmail_procs.comm"](here) == name
    assert utils["qmail_procs.alive"](here)


def test_a_zombie_or_a_gone_process_is_not_alive(utils, tmp_path):
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 60
    while True:  # until it has exited, not yet reaped: a zombie
        with open(f"/proc/{child.pid}/stat", encoding="ascii") as handle:
            if handle.read().rpartition(")")[2].split()[0] == "Z":
                break
        assert time.monotonic() < deadline, "true never exited"
        time.sleep(0.02)
    assert utils["qmail_procs.alive"](child.pid) is False
    child.wait()
    assert utils["qmail_procs.alive"](child.pid) is False
    assert utils["qmail_procs.comm"](child.pid) == ""
    assert utils["qmail_procs.exe"](child.pid) is None


def test_sendmail_of_a_container_is_left_alone(modules, two_namespaces):
    program, _, here, other = two_namespaces
    found = [p["pid"] for p in modules.qmail_sendmail.processes([str(program)], ports=[])]
    assert found == [here]


def test_without_proc_a_process_is_alive_until_it_is_gone(utils, monkeypatch):
    """FreeBSD and IRIX have no /proc: alive() must not take that for death."""
    alive = utils["qmail_procs.alive"]
    monkeypatch.setitem(alive.__globals__, "_has_proc", lambda: False)
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert alive(child.pid) is True
    finally:
        child.kill()
        child.wait()
    assert alive(child.pid) is False


LISTENER = ("import socket, sys, time\n"
            "open('/proc/self/comm', 'w').write(sys.argv[1])\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True); time.sleep(120)\n")


def test_a_sendmail_named_listener_is_found_and_another_listener_is_not(utils):
    # Readable programs that are not sendmail's files: only the port and the
    # name make the first one a sendmail (as Debian's sendmail-mta).
    procs = [subprocess.Popen(["python3", "-c", LISTENER, name], stdout=subprocess.PIPE,
                              text=True) for name in ("sendmail-mta", "tcpserver")]
    try:
        ports = {int(proc.stdout.readline()) for proc in procs}
        found = utils.qmail_procs.programs(set(), "sendmail", ports, None)
        assert [(f["pid"], f["comm"]) for f in found] == [(procs[0].pid, "sendmail-mta")]
        assert utils.qmail_procs.programs(set(), "sendmail", set(), None) == []
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
