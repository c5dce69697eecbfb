"""
``salt-call`` without a new Python start per call: one process per pytest
worker imports Salt once, then forks a child per call that runs the
``salt-call`` script's own entry point (``salt.scripts.salt_call``) with
the call's arguments, environment and working folder, its stdout and
stderr in files, and exits with the script's exit code. Everything the
command does (parsing, configuration, grains, loaders, the function, the
output) runs in the child as in a ``salt-call`` process; only the
interpreter's start and Salt's imports (a third of a ``salt-call
test.ping``) are shared. ``QMAIL_SALT_CALL_PROCESS=1`` runs the script
instead, a process per call (the reference this is checked against in
``test_salt_call_server.py``).

    python salt_call_server.py     (requests on stdin, answers on stdout)

A request is a JSON line ``{"argv": [...], "env": {...}, "cwd": ...,
"stdout": PATH, "stderr": PATH}``; the answer ``{"rc": N}``.
"""

import json
import os
import sys


def _child(request):
    """In the forked child: become the ``salt-call`` process of ``request``."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the server's pipes among them
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.argv = ["salt-call", *request["argv"]]
    code = 0
    try:
        import salt.scripts  # noqa: PLC0415 - imported already, in the server

        salt.scripts.salt_call()
    except SystemExit as exc:  # as Python exits: a number, or a message and 1
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            sys.stderr.write(f"{exc.code}\n")
            code = 1
    except BaseException:  # noqa: BLE001 - what the script dies of, with its traceback
        import traceback  # noqa: PLC0415

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve():
    # What the salt-call script imports before it parses anything, and the
    # modules every call then loads (the loaders' own modules are loaded per
    # call, in the child, as in a new process).
    import salt.cli.call  # noqa: F401, PLC0415
    import salt.cli.caller  # noqa: F401, PLC0415
    import salt.client  # noqa: F401, PLC0415
    import salt.fileclient  # noqa: F401, PLC0415
    import salt.loader  # noqa: F401, PLC0415
    import salt.minion  # noqa: F401, PLC0415
    import salt.output  # noqa: F401, PLC0415
    import salt.pillar  # noqa: F401, PLC0415
    import salt.scripts  # noqa: F401, PLC0415
    import salt.state  # noqa: F401, PLC0415
    import salt.utils.jinja  # noqa: F401, PLC0415

    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    proto.write('{"ready": true}\n')
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            proto.close()
            _child(request)
        _, status = os.waitpid(pid, 0)
        proto.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")


if __name__ == "__main__":
    serve()
