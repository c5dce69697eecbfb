"""
lab/agent.py on a real host: a command run through the host's runner gives
what the same command gives through its own ``podman exec`` (the reference,
``QMAIL_LAB_PODMAN_EXEC=1``): exit status, stdout and stderr (newlines as
``subprocess`` text mode gives them), input, environment, user, stdin.
Besides: a timeout kills the command, a background process does not hold
the answer, ``ps -C python3`` does not see the runner, and after a reboot
the next command starts a new runner.
"""

import subprocess

import pytest

import lab.host

pytestmark = pytest.mark.lab

FQDN = "agent.cla.kobe-u.ac.jp"

COMMANDS = [
    (["sh", "-c", "printf 'a\\r\\nb\\rc'; echo err >&2; exit 3"], None),
    (["cat"], "héllo\nwörld\n"),
    (["sh", "-c", "env | sort"], None),
    (["id"], None),
    (["readlink", "/proc/self/fd/0"], None),
    (["sh", "-c", "cat /proc/self/status | grep -E '^(Uid|Gid|Groups|CapEff):'"], None),
    (["pwd"], None),
    (["test", "-e", "/nonexistent"], None),
]


@pytest.fixture(scope="module")
def host(lab_hosts_module):
    (host,) = lab_hosts_module([FQDN], image="base")
    return host


def _through_podman_exec(host, argv, input):
    old, lab.host.PODMAN_EXEC = lab.host.PODMAN_EXEC, True
    try:
        return host.run(argv, input=input)
    finally:
        lab.host.PODMAN_EXEC = old


@pytest.mark.parametrize(("argv", "input"), COMMANDS, ids=[" ".join(c[0])[:30] for c in COMMANDS])
def test_a_command_gives_what_podman_exec_gives(host, argv, input):
    got = host.run(argv, input=input)
    want = _through_podman_exec(host, argv, input)
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout,
                                                        want.stderr)


def test_a_missing_program_fails_as_with_podman_exec(host):
    assert host.run(["no-such-program"]).returncode == _through_podman_exec(
        host, ["no-such-program"], None).returncode == 127


def test_timeout_kills_the_command_and_a_daemon_does_not_hold_the_answer(host):
    with pytest.raises(subprocess.TimeoutExpired):
        host.run(["sh", "-c", "echo $$ > /run/agent-test.pid; exec sleep 300"], timeout=2)
    pid = host.read_file("/run/agent-test.pid").strip()
    assert host.run(["kill", "-0", pid]).returncode != 0  # killed, not left running
    started = host.run("sleep 300 & echo started", timeout=30)
    assert started.stdout == "started\n"
    assert host.run(["pkill", "-x", "sleep"]).returncode == 0


def test_the_runner_is_not_a_python3_process_and_comes_back_after_a_reboot(host):
    assert host.run(["ps", "-o", "comm=", "-C", "python3"]).stdout == ""
    assert len(host.run(["pgrep", "-x", "lab-agent"], check=True).stdout.split()) == 1
    host.run(["touch", "/run/before-reboot"], check=True)
    host.reboot()  # /run is a tmpfs: the mark goes with the old boot
    assert not host.exists("/run/before-reboot")
    assert len(host.run(["pgrep", "-x", "lab-agent"], check=True).stdout.split()) == 1
