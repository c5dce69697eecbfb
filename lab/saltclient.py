"""One long-lived process that runs ``salt`` and ``salt-key`` commands for
one lab master, so that each command does not pay for a new Python process.

``LabMaster`` (lab/master.py) starts ``python lab/saltclient.py`` once per
master, on its first command, and stops it with the master. It speaks JSON
lines: a request ``{"id": 1, "cmd": "salt", "argv": [...]}`` on stdin, the
answer ``{"id": 1, "rc": 0, "stdout": "...", "stderr": "..."}`` on stdout,
shaped as the CLI's ``subprocess.CompletedProcess``. Each request runs in a
thread of its own, so commands from several threads of a test run side by
side, as the CLI processes did.

What runs is the CLI's own code, minus the process start:

- ``salt``: Salt's own ``SaltCMD`` (the class the ``salt`` script runs):
  its parser reads ``argv`` exactly as the script would (``-c``, target
  flags, ``parse_input`` of the arguments), then its ``_run`` publishes the
  job, prints each minion's return with the outputter ``--out`` names (one
  JSON document per minion with ``--out=json``) and exits as the script
  does. Parsing skips only Salt's logging set-up, done once per process
  (``_parser``). The lab does not pass ``--static``: that runs Salt's batch
  code, which pings every targeted minion (a ``test.ping`` job) before each
  command.
- ``salt-key``: ``SaltKeyOptionParser`` and ``salt.key.KeyCLI``, as the
  ``salt-key`` script.

One process per master: Salt keeps caches per process (opts, event and IPC
clients, crypto keys), and none of them is then shared between the masters
that one pytest worker creates and destroys one after the other (the reason
a ``LocalClient`` inside the pytest process was given up, README "Tests").
What Salt prints in a request's thread (``print``, ``sys.stderr.write``,
its console log handler) is that request's stdout or stderr, as it would be
the CLI process's; the protocol has a descriptor of its own.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import traceback

# -- the helper process -------------------------------------------------------


#: The steps of Salt's ``LogLevelMixIn`` a parser runs after parsing; in a
#: CLI process they run once, and so they do here (``_serve``): Salt's
#: logging options are then frozen, and setting them again raises.
_LOGGING_STEPS = {"__setup_logging_routines", "__setup_console_logger_config",
                  "__setup_logfile_logger_config", "__setup_logging_config",
                  "__verify_logging", "__setup_logging", "__shutdown_logging"}


def _parser(cls):
    """A ``cls`` (a Salt CLI option parser) whose parse does everything the
    CLI's does but set up logging (or shut it down on an error exit).

    Salt keeps these steps in lists on the parser class; the parser gets
    lists of its own without them."""
    from salt.utils.parsers import MixinFuncsContainer

    parser = cls()
    for attr in ("_mixin_after_parsed_funcs", "_mixin_before_exit_funcs"):
        funcs = getattr(parser, attr)
        if attr == "_mixin_after_parsed_funcs" and not any(
                getattr(f, "__name__", "") == "__setup_logging_routines" for f in funcs):
            raise RuntimeError(f"{cls.__name__}: Salt's logging set-up step not found"
                               " (lab/saltclient.py needs updating for this Salt)")
        setattr(parser, attr, MixinFuncsContainer(
            f for f in funcs if getattr(f, "__name__", "") not in _LOGGING_STEPS))
    return parser


class _PerThread(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of the helper: what a request's thread
    writes goes to that request's buffer (the CLI process's stdout or
    stderr), anything else to ``fallback`` (the helper's stderr)."""

    def __init__(self, fallback):
        super().__init__()
        self._fallback = fallback
        self._local = threading.local()

    @contextlib.contextmanager
    def capture(self):
        self._local.buf = buf = io.StringIO()
        try:
            yield buf
        finally:
            self._local.buf = None

    def write(self, text: str) -> int:
        buf = getattr(self._local, "buf", None)
        return (buf if buf is not None else self._fallback).write(text)

    def flush(self) -> None:
        if getattr(self._local, "buf", None) is None:
            self._fallback.flush()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"


def _run_salt(argv: list[str], parse_lock: threading.Lock) -> None:
    """``salt`` as the script runs it (``SaltCMD._run``)."""
    import salt.cli.salt

    with parse_lock:  # Salt's parsers touch process-wide state: one at a time
        parser = _parser(salt.cli.salt.SaltCMD)
        parser.parse_args(argv)
    parser._run()  # noqa: SLF001 - what SaltCMD.run does after parsing, but tracing


def _run_salt_key(argv: list[str], parse_lock: threading.Lock) -> None:
    """``salt-key`` as the script runs it (``salt.cli.key.SaltKey.run``)."""
    import salt.key
    import salt.utils.parsers
    from salt.utils.verify import check_user

    with parse_lock:  # key changes one at a time, as from one shell
        parser = _parser(salt.utils.parsers.SaltKeyOptionParser)
        parser.parse_args(argv)
        with salt.key.KeyCLI(parser.config) as key:
            if check_user(parser.config["user"]):
                key.run()


def _handle(request: dict, parse_lock: threading.Lock, stdout: _PerThread,
            stderr: _PerThread) -> dict:
    runner = {"salt": _run_salt, "salt-key": _run_salt_key}.get(request.get("cmd"))
    if runner is None:
        return {"rc": 2, "stdout": "", "stderr": f"unknown command {request.get('cmd')!r}\n"}
    with stdout.capture() as out, stderr.capture() as err:
        rc = 0
        try:
            runner(list(request["argv"]), parse_lock)
        except SystemExit as exc:  # sys.exit() of Salt's code or its parser
            if exc.code is None or isinstance(exc.code, int):
                rc = exc.code or 0
            else:  # as Python exits with a message
                rc = 1
                err.write(f"{exc.code}\n")
        except BaseException:  # what the script would die of, with its traceback
            rc = 1
            err.write(traceback.format_exc())
    return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}


def _serve(config_dir: str) -> None:
    from salt._process_role import mark_as_cli

    mark_as_cli()
    # The protocol keeps the real stdout. fd 1 becomes stderr, and
    # sys.stdout/sys.stderr write into the buffers of the request whose
    # thread writes (the CLI's stdout and stderr), else to fd 2: nothing
    # Salt prints can break a JSON line.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = stdout = _PerThread(sys.__stderr__)
    sys.stderr = stderr = _PerThread(sys.__stderr__)
    write_lock, parse_lock = threading.Lock(), threading.Lock()

    def answer(request: dict) -> None:
        reply = _handle(request, parse_lock, stdout, stderr)
        reply["id"] = request.get("id")
        line = json.dumps(reply)
        with write_lock:
            proto.write(line + "\n")
            proto.flush()

    # Import Salt's client side and set up its logging as the ``salt`` CLI
    # does, once, before the first request (the parse of a command that is
    # not run): its console handler then writes to sys.stderr above.
    import salt.cli.salt
    import salt.key  # noqa: F401
    import salt.output  # noqa: F401
    import salt_speedups  # lab/salt_speedups.py: this file runs as a script from lab/

    # Each command builds a LocalClient, whose loaders list Salt's module
    # folders again (a third of the helper's CPU a command): listed once;
    # and a command waits on the bus for its returns, not in a polling loop.
    salt_speedups.install_client()

    salt.cli.salt.SaltCMD().parse_args(["-c", config_dir, "--out=json", "*", "test.ping"])

    with write_lock:
        proto.write(json.dumps({"ready": config_dir}) + "\n")
        proto.flush()
    for line in sys.stdin:
        if line.strip():
            threading.Thread(target=answer, args=(json.loads(line),), daemon=True).start()
    # stdin closed: the master is going away; requests still running go with it.
    proto.flush()
    os._exit(0)


# -- the client side (in LabMaster's process) -----------------------------------


class SaltClientError(RuntimeError):
    """The helper process is gone or did not answer."""


class SaltClient:
    """The helper for the master whose configuration is in ``config_dir``.

    ``run(cmd, argv, timeout)`` returns a ``subprocess.CompletedProcess`` as
    running ``cmd -c config_dir *argv`` would; safe to call from several
    threads. The process starts on the first call; its stderr (Salt's log
    lines) goes to ``stderr_path``, quoted when it dies.
    """

    def __init__(self, config_dir: str, stderr_path: str, env: dict | None = None):
        self.config_dir = config_dir
        self.stderr_path = stderr_path
        self.env = env
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # start/stop and writes to stdin
        self._pending: dict[int, list] = {}  # id -> [threading.Event, reply]
        self._next_id = 0
        self._reader: threading.Thread | None = None
        self._dead: str | None = None

    def _start(self) -> None:
        stderr = open(self.stderr_path, "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), self.config_dir],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                env=self.env, text=True, bufsize=1)
        finally:
            stderr.close()
        ready = self._proc.stdout.readline()
        if not ready.startswith('{"ready"'):
            self._proc.wait(10)
            raise SaltClientError(f"lab.saltclient for {self.config_dir} did not start"
                                  f" (rc {self._proc.returncode}): {ready}\n{self._stderr()}")
        self._reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._reader.start()

    def _stderr(self, limit: int = 6000) -> str:
        text = ""
        with contextlib.suppress(OSError), open(self.stderr_path, errors="replace") as fh:
            text = fh.read()[-limit:]
        return text or "(nothing on its stderr)"

    def _read(self, proc: subprocess.Popen) -> None:
        from . import replies  # the client side only: this file also runs as the helper

        replies.dispatch(proc.stdout, self._lock, self._pending)
        rc = proc.wait()
        with self._lock:
            if self._proc is proc:
                self._dead = (f"lab.saltclient for {self.config_dir} exited"
                              f" (rc {rc}); its stderr:\n{self._stderr()}")
            for slot in self._pending.values():
                slot[0].set()
            self._pending.clear()

    def run(self, cmd: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        argv = ["-c", self.config_dir, *argv]
        done = threading.Event()
        slot = [done, None]
        with self._lock:
            if self._dead:
                raise SaltClientError(self._dead)
            if self._proc is None:
                self._start()
            self._next_id += 1
            request_id = self._next_id
            self._pending[request_id] = slot
            try:
                self._proc.stdin.write(json.dumps({"id": request_id, "cmd": cmd,
                                                   "argv": argv}) + "\n")
                self._proc.stdin.flush()
            except OSError as exc:
                self._pending.pop(request_id, None)
                raise SaltClientError(f"lab.saltclient for {self.config_dir}: {exc}\n"
                                      f"{self._stderr()}") from exc
        if not done.wait(timeout):
            with self._lock:
                self._pending.pop(request_id, None)
            raise SaltClientError(f"lab.saltclient for {self.config_dir}: no answer to"
                                  f" {cmd} {' '.join(argv)} in {timeout} s")
        reply = slot[1]
        if reply is None:
            raise SaltClientError(self._dead or f"lab.saltclient for {self.config_dir}: gone")
        return subprocess.CompletedProcess([cmd, *argv],
                                           reply["rc"], reply["stdout"], reply["stderr"])

    def stop(self) -> None:
        """End the process (it exits when its stdin closes) and wait for it."""
        with self._lock:
            proc, self._proc = self._proc, None
            self._dead = f"lab.saltclient for {self.config_dir}: stopped"
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(5)


if __name__ == "__main__":
    _serve(sys.argv[1])
