"""One command runner per lab host: a small Python process inside the host,
started by one ``podman exec``, that runs each of ``Host.run``'s commands.

A ``podman exec`` costs the machine about 150 ms of CPU (podman, conmon and
runc); the e2e tests run about a thousand commands in their hosts, most of
them small (``test -e``, ``cat``, ``pgrep``). Through the runner a command
costs a fork and an exec in the host.

What a command sees is what ``podman exec`` gives it: the runner is itself
a ``podman exec`` process (root, the container's environment, no terminal),
stdin is /dev/null unless input is given, and the command runs in a session
of its own (so a timeout kills all of it). Its output goes to memory files,
read when it exits: a daemon it starts that keeps them open does not hold
the answer back. The runner names itself ``lab-agent`` (``ps -C python3``
does not count it) and writes nothing on the host's disk.

The runner ends with the container (a stop, a reboot); the next command
starts a new one. A command running when it ends fails with ``AgentGone``.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import threading

from . import replies

#: The runner, for the host's /usr/bin/python3 (3.9 on Debian 11).
_RUNNER = r"""
import base64, ctypes, json, os, signal, subprocess, sys, threading
try:
    ctypes.CDLL(None).prctl(15, b"lab-agent", 0, 0, 0)
except Exception:
    pass
proto = os.fdopen(os.dup(1), "w", buffering=1)
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 1)
os.dup2(null, 2)
lock = threading.Lock()
# The environment podman exec gave, as the kernel keeps it: Python may have
# added LC_CTYPE to os.environ (PEP 538), which a command must not see.
with open("/proc/self/environ", "rb") as f:
    env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)

def answer(reply):
    with lock:
        proto.write(json.dumps(reply) + "\n")
        proto.flush()

def memfile(data=b""):
    fd = os.memfd_create("lab-agent")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, 0)
    return fd

def slurp(fd):
    os.lseek(fd, 0, 0)
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    return base64.b64encode(b"".join(chunks)).decode()

def serve(req):
    rid = req["id"]
    stdin = subprocess.DEVNULL if req["input"] is None else memfile(
        base64.b64decode(req["input"]))
    out, err = memfile(), memfile()
    try:
        try:
            proc = subprocess.Popen(req["argv"], stdin=stdin, stdout=out, stderr=err,
                                    env=env, start_new_session=True)
        except OSError as exc:
            rc = 127 if isinstance(exc, FileNotFoundError) else 126
            msg = "lab-agent: %s: %s\n" % (req["argv"][0], exc.strerror)
            answer({"id": rid, "rc": rc, "out": "", "err": base64.b64encode(
                msg.encode()).decode()})
            return
        try:
            rc = proc.wait(req["timeout"])
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
            answer({"id": rid, "timeout": True})
            return
        answer({"id": rid, "rc": rc, "out": slurp(out), "err": slurp(err)})
    finally:
        for fd in (stdin, out, err):
            if fd != subprocess.DEVNULL:
                os.close(fd)

answer({"ready": os.getpid()})
for line in sys.stdin:
    if line.strip():
        threading.Thread(target=serve, args=(json.loads(line),), daemon=True).start()
"""


class AgentGone(RuntimeError):
    """The host's runner ended (the container stopped) while a command ran."""


class AgentUnavailable(AgentGone):
    """The runner could not start (e.g. the container is not running)."""


class Agent:
    """The runner of one container; ``run`` is safe from several threads."""

    def __init__(self, podman, container: str):
        self.podman = podman
        self.container = container
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pending: dict[int, list] = {}
        self._next_id = 0

    def _start(self) -> subprocess.Popen:
        with tempfile.TemporaryFile() as err:  # podman's own messages
            proc = subprocess.Popen(
                self.podman.argv("exec", "-i", self.container, "python3", "-c", _RUNNER),
                env=self.podman.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err)
            ready = proc.stdout.readline()
            if not ready.startswith(b'{"ready"'):
                proc.kill()
                proc.wait()
                err.seek(0)
                raise AgentUnavailable(f"{self.container}: no runner: {ready!r}"
                                       f" {err.read()[-2000:]!r}")
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()
        return proc

    def _read(self, proc: subprocess.Popen) -> None:
        replies.dispatch(proc.stdout, self._lock, self._pending)
        proc.wait()
        with self._lock:
            if self._proc is proc:
                self._proc = None
            for slot in self._pending.values():
                slot[0].set()
            self._pending.clear()

    def run(self, argv: list[str], input: bytes | None, timeout: float | None
            ) -> tuple[int, bytes, bytes]:
        """Run ``argv`` in the host; return (returncode, stdout, stderr).
        Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds (the
        command killed), ``AgentGone`` if the runner ends or cannot start."""
        done = threading.Event()
        slot = [done, None]
        request = {"argv": list(argv), "timeout": timeout,
                   "input": None if input is None else base64.b64encode(input).decode()}
        with self._lock:
            if self._proc is None:
                self._proc = self._start()
            self._next_id += 1
            request["id"] = self._next_id
            self._pending[request["id"]] = slot
            try:
                self._proc.stdin.write(json.dumps(request).encode() + b"\n")
                self._proc.stdin.flush()
            except OSError as exc:
                self._pending.pop(request["id"], None)
                raise AgentGone(f"{self.container}: runner gone: {exc}") from exc
        # The runner kills the command at ``timeout``; the margin is for a
        # runner that no longer answers at all.
        if not done.wait(None if timeout is None else timeout + 60):
            with self._lock:
                self._pending.pop(request["id"], None)
            raise subprocess.TimeoutExpired(argv, timeout)
        reply = slot[1]
        if reply is None:
            raise AgentGone(f"{self.container}: the runner ended during {argv!r}")
        if reply.get("timeout"):
            raise subprocess.TimeoutExpired(argv, timeout)
        return (reply["rc"], base64.b64decode(reply["out"]), base64.b64decode(reply["err"]))

    def close(self) -> None:
        """End the runner (it exits when its stdin closes)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
