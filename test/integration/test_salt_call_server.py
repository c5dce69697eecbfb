"""
``salt_call_server.py`` answers as the ``salt-call`` script does: the same
stdout, stderr and exit code for a call that works, one that fails in
Salt, one the parser refuses, and one whose output depends on the
environment and the working folder; and a call's changes to the process
(its environment, its loaded modules) do not reach the next call.
"""

import json
import os
import subprocess

import pytest
from conftest import SALT_CALL, SaltCallServer


@pytest.fixture(scope="module")
def server():
    the_server = SaltCallServer()
    yield the_server
    the_server.stop()


def both(server, argv, env, cwd):
    script = subprocess.run([str(SALT_CALL), *argv], capture_output=True, text=True, env=env,
                            cwd=cwd, check=False)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        served = server.run(argv, env)
    finally:
        os.chdir(old)
    return script, served


def _comparable(stdout):
    """The JSON printed, without what differs between any two processes (a
    job's PID and ID); the text itself when it is not JSON."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return stdout
    if isinstance(data.get("local"), dict) and "kwargs" in data["local"]:
        for key in ("__pub_pid", "__pub_jid"):
            data["local"]["kwargs"].pop(key, None)
    return data


@pytest.mark.parametrize("args, rc", [
    (["test.ping"], 0),
    (["test.arg", "a", "b=c"], 0),
    (["environ.get", "QMAIL_TEST_VALUE"], 0),
    (["file.file_exists", "here"], 0),  # a relative path: the working folder's
    (["test.exception", "boom"], 1),  # the function raises
    (["no_such_module.fun"], 1),
    (["--no-such-option"], 2),  # the parser's refusal
], ids=["ping", "args", "environment", "working-folder", "exception", "unknown", "usage"])
def test_the_server_answers_as_the_script(server, salt_call_synced, tmp_path, args, rc):
    argv = ["--local", "-c", str(salt_call_synced.root), "--out=json", "-l", "quiet", *args]
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning",
               QMAIL_TEST_VALUE=tmp_path.name)
    (tmp_path / "here").write_text("")
    script, served = both(server, argv, env, tmp_path)
    assert (script.returncode == 0) == (rc == 0), script.stderr
    assert served.returncode == script.returncode
    assert _comparable(served.stdout) == _comparable(script.stdout)
    # The same complaint, if any (a traceback's addresses may differ).
    assert served.stderr.splitlines()[-1:] == script.stderr.splitlines()[-1:]
    if args[0] in ("environ.get", "file.file_exists"):
        assert json.loads(served.stdout)["local"] == (
            tmp_path.name if args[0] == "environ.get" else True)


def test_a_call_leaves_nothing_to_the_next(server, salt_call_synced, tmp_path):
    argv = ["--local", "-c", str(salt_call_synced.root), "--out=json", "-l", "quiet"]
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    set_it = server.run([*argv, "environ.setval", "QMAIL_LEFT_BEHIND", "left"], env)
    assert json.loads(set_it.stdout)["local"] == "left"
    after = server.run([*argv, "environ.get", "QMAIL_LEFT_BEHIND"], env)
    assert json.loads(after.stdout)["local"] == ""
