"""One throwaway host: a podman container that boots systemd."""

from __future__ import annotations

import io
import os
import pathlib
import re
import shlex
import subprocess
import time
from collections.abc import Sequence

from . import image as image_mod
from .agent import Agent, AgentGone, AgentUnavailable
from .podman import Podman
from .wait import wait_until

#: ``QMAIL_LAB_PODMAN_EXEC=1``: every command through its own ``podman exec``
#: (the reference the runner of lab/agent.py is checked against).
PODMAN_EXEC = os.environ.get("QMAIL_LAB_PODMAN_EXEC") == "1"


def _text(data: bytes) -> str:
    """Output as ``subprocess.run(text=True)`` gives it (universal newlines)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()


class HostError(RuntimeError):
    """A command in a host failed or the host did not come up."""


class Host:
    """A lab host, named by its FQDN, on the lab network.

    Attributes:
        fqdn: the host's fully qualified name (also its minion id).
        short: the first label of the FQDN.
        ip: its fixed address on the lab network.
        ip6: its fixed address on the lab's IPv6 network, None without one.
        name: the podman container name.
        image: the image reference it was started from.
        release: its Debian release ("11", "12", "13").
    """

    def __init__(self, podman: Podman, name: str, fqdn: str, ip: str, image: str,
                 ip6: str | None = None):
        self.podman = podman
        self.name = name
        self.fqdn = fqdn
        self.short = fqdn.split(".", 1)[0]
        self.ip = ip
        self.ip6 = ip6
        self.image = image
        self.release = image_mod.release_of(image)
        self._agent = Agent(podman, name)

    def __repr__(self) -> str:
        return f"<Host {self.fqdn} {self.ip} Debian {self.release} ({self.name})>"

    @property
    def minion_id(self) -> str:
        """The salt minion id of this host (its FQDN)."""
        return self.fqdn

    def run(self, cmd: str | Sequence[str], check: bool = False, input: str | None = None,
            timeout: float | None = 600, user: str | None = None,
            ) -> subprocess.CompletedProcess:
        """Run ``cmd`` in the host (a string goes through ``sh -c``).

        Returns the CompletedProcess (text stdout/stderr); raises HostError on a
        non-zero exit status when ``check`` is true.
        """
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        rc, out, err = self._exec(argv, None if input is None else input.encode(), timeout, user)
        proc = subprocess.CompletedProcess(argv, rc, _text(out), _text(err))
        if check and proc.returncode != 0:
            raise HostError(f"{self.fqdn}: {cmd!r} -> {proc.returncode}\n"
                            f"{proc.stdout}\n{proc.stderr}")
        return proc

    def put_file(self, path: str, content: str | bytes, mode: int = 0o644,
                 owner: str = "root:root") -> None:
        """Write ``content`` to ``path`` in the host (parents are created)."""
        data = content.encode() if isinstance(content, str) else content
        q = shlex.quote(path)
        argv = ["sh", "-c", f"mkdir -p $(dirname {q}) && cat > {q} && "
                            f"chmod {mode:o} {q} && chown {owner} {q}"]
        rc, _, err = self._exec(argv, data, 600)
        if rc != 0:
            raise HostError(f"{self.fqdn}: cannot write {path}: {err.decode()}")

    def _exec(self, argv: list[str], input: bytes | None, timeout: float | None,
              user: str | None = None) -> tuple[int, bytes, bytes]:
        """Run ``argv`` in the host: through its runner (lab/agent.py), or
        its own ``podman exec`` with ``user``, ``QMAIL_LAB_PODMAN_EXEC`` or
        when the container does not run (podman's own answer then)."""
        if not (user or PODMAN_EXEC):
            try:
                return self._agent.run(argv, input, timeout)
            except AgentUnavailable:
                pass
            except AgentGone as exc:
                raise HostError(f"{self.fqdn}: {argv!r}: {exc}") from exc
        opts = ["-i"] if input is not None else []
        if user:
            opts += ["--user", user]
        proc = self.podman("exec", *opts, self.name, *argv, check=False, input=input,
                           timeout=timeout, text=False)
        return proc.returncode, proc.stdout, proc.stderr

    def stop_runner(self) -> None:
        """End the host's command runner (lab/agent.py); the next command
        starts it again. For measuring a host without it."""
        self._agent.close()

    def read_file(self, path: str) -> str:
        """Return the text of ``path`` in the host."""
        return self.run(["cat", path], check=True).stdout

    def exists(self, path: str) -> bool:
        """True if ``path`` exists in the host."""
        return self.run(["test", "-e", path]).returncode == 0

    def wait_booted(self, timeout: float = 180) -> str:
        """Wait until systemd is up (running or degraded); return its state.
        ``--wait`` blocks until the boot is over, so a host usually takes one
        exec; the loop covers the moments before systemd answers at all."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            left = max(1, int(deadline - time.monotonic()))
            proc = self.run(["timeout", str(left), "systemctl", "is-system-running", "--wait"],
                            timeout=left + 30)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.2)
        raise HostError(f"{self.fqdn}: systemd not up after {timeout} s (state {state!r})")

    def listeners(self) -> dict[int, set[str]]:
        """The TCP ports the host listens on, each with the names of the processes."""
        out = self.run(["ss", "-Hltnp"], check=True).stdout
        ports: dict[int, set[str]] = {}
        for line in out.splitlines():
            fields = line.split()
            port = int(fields[3].rsplit(":", 1)[1])
            ports.setdefault(port, set()).update(re.findall(r'"([^"]+)",pid=', line))
        return ports

    def wait_listening(self, port: int, timeout: float = 60) -> None:
        """Until something listens on TCP ``port``: ``systemctl start`` of a
        unit returns before its daemon has bound the port, and mail sent to
        it at once would be refused and retried only much later."""
        wait_until(lambda: port in self.listeners(), timeout,
                   what=f"{self.fqdn} listening on port {port}")

    def add_mail_user(self, name: str) -> str:
        """Create the user ``name`` with the Maildir that qmail's default
        delivery (``./Maildir/``) needs; return the Maildir's path."""
        maildir = f"/home/{name}/Maildir"
        self.run(f"useradd -m {name} && su {name} -s /bin/sh -c "
                 f"'mkdir -p {maildir}/cur {maildir}/new {maildir}/tmp'", check=True)
        return maildir

    def delivered(self, maildir: str, subject: str) -> list[str]:
        """The new messages in ``maildir`` whose Subject is exactly ``subject``."""
        proc = self.run(f"grep -l -r -F -x {shlex.quote('Subject: ' + subject)} {maildir}/new")
        return proc.stdout.split()

    def qmail_queue_empty(self, home: str = "/var/qmail") -> bool:
        """True if ``qmail-qstat`` counts no message, queued or not yet
        preprocessed."""
        lines = self.run([f"{home}/bin/qmail-qstat"]).stdout.splitlines()
        return len(lines) == 2 and all(line.endswith(": 0") for line in lines)

    def service_active(self, unit: str) -> bool:
        """True if the systemd ``unit`` is active."""
        return self.run(["systemctl", "is-active", "--quiet", unit]).returncode == 0

    def reboot(self, timeout: float = 60) -> None:
        """Shut the host down cleanly, boot it again and wait for systemd.

        Not ``podman restart``: when systemd finishes its shutdown just as the
        stop timeout expires, podman's fallback SIGKILL hits a stopped
        container and the restart fails although nothing is wrong.
        """
        self.stop(grace=30)
        self.start(timeout)

    restart = reboot

    def stats(self) -> dict:
        """podman stats of the host (memory usage etc.)."""
        data = self.podman.json("stats", "--no-stream", "--no-reset", "--format", "json",
                                self.name)
        return data[0] if data else {}

    def _memory_cgroup(self) -> pathlib.Path:
        path = self.podman("inspect", "--format", "{{.State.CgroupPath}}",
                           self.name).stdout.strip()
        v1 = pathlib.Path(f"/sys/fs/cgroup/memory{path}")
        return v1 if v1.exists() else pathlib.Path(f"/sys/fs/cgroup{path}")

    def memory_bytes(self) -> int:
        """Memory charged to the host's cgroup (page cache included), in bytes."""
        cgroup = self._memory_cgroup()
        for name in ("memory.usage_in_bytes", "memory.current"):
            if (cgroup / name).exists():
                return int((cgroup / name).read_text())
        return 0

    def memory_rss_bytes(self) -> int:
        """Resident (anonymous) memory of the host's processes, in bytes."""
        stats = dict(line.split() for line in
                     (self._memory_cgroup() / "memory.stat").read_text().splitlines())
        return int(stats.get("total_rss", stats.get("anon", 0)))

    def running(self) -> bool:
        """True while the container runs."""
        proc = self.podman("inspect", "--format", "{{.State.Running}}", self.name,
                           check=False)
        return proc.stdout.strip() == "true"

    def stop(self, grace: int = 5) -> None:
        """Stop the container (it can be started again with ``start``).

        systemd gets ``grace`` seconds to shut down; a container still running
        after that is killed, and an error of podman's about a container that
        stopped meanwhile is ignored: only the outcome counts.
        """
        self._agent.close()
        self.podman("stop", "--time", str(grace), self.name, check=False,
                    timeout=grace + 60)
        if self.running():
            self.podman("kill", self.name, check=False)
        if self.running():
            raise HostError(f"{self.fqdn}: container {self.name} does not stop")

    def start(self, timeout: float = 60) -> None:
        """Start a stopped container and wait for systemd."""
        self.podman("start", self.name)
        self.wait_booted(timeout)

    def remove(self) -> None:
        """Remove the container and everything in it."""
        self._agent.close()
        self.podman("rm", "-f", "--time", "2", self.name, check=False)
