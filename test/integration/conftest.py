"""
One-host fixtures: ``salt-call --local`` on this machine, with a temporary
root_dir, this checkout's formula folders as file_roots and a pillar written per test. The
qmail home is pointed into a temporary folder through ``qmail:lookup:home``,
so /etc/salt and /var/qmail are never touched.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest
import yaml

from lab import formula

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
SALT_CALL = pathlib.Path(sys.executable).with_name("salt-call")


class SaltCallServer:
    """``salt-call`` through ``salt_call_server.py`` (a fork per call of a
    process that imported Salt once); ``run`` returns a
    ``subprocess.CompletedProcess`` as running the script would. One per
    pytest worker, started on its first call."""

    def __init__(self):
        self._proc = None
        self._lock = threading.Lock()
        self._tmp = pathlib.Path(tempfile.mkdtemp(prefix="salt-call-server-"))

    def run(self, argv, env):
        with self._lock:
            if self._proc is None:
                self._proc = subprocess.Popen(
                    [sys.executable, str(HERE / "salt_call_server.py")], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True, bufsize=1, env=env)
                ready = self._proc.stdout.readline()
                assert ready.startswith('{"ready"'), f"salt_call_server did not start: {ready}"
            out, err = self._tmp / "stdout", self._tmp / "stderr"
            self._proc.stdin.write(json.dumps({"argv": argv, "env": env, "cwd": os.getcwd(),
                                               "stdout": str(out), "stderr": str(err)}) + "\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline()
            assert answer, "salt_call_server is gone"
            return subprocess.CompletedProcess(["salt-call", *argv], json.loads(answer)["rc"],
                                               out.read_text(), err.read_text())

    def stop(self):
        with self._lock:
            if self._proc is not None:
                self._proc.stdin.close()
                self._proc.wait(30)
                self._proc = None
            shutil.rmtree(self._tmp, ignore_errors=True)


#: None: each call runs the salt-call script (QMAIL_SALT_CALL_PROCESS=1).
SERVER = None if os.environ.get("QMAIL_SALT_CALL_PROCESS") == "1" else SaltCallServer()


class SaltCall:
    """A masterless minion driven through the ``salt-call`` command."""

    def __init__(self, root, minion_id="hostname.cla.kobe-u.ac.jp"):
        self.root = root
        self.pillar_dir = root / "pillar"
        self.pillar_dir.mkdir(parents=True, exist_ok=True)
        (self.pillar_dir / "top.sls").write_text("base:\n  '*':\n    - qmail\n")
        config = {
            "id": minion_id,
            "root_dir": str(root),
            "file_client": "local",
            # The formula's folders, not the checkout's root (.venv, .git):
            # see lab/formula.py.
            "file_roots": {"base": [str(formula.link_view(root / "formula", REPO))]},
            "pillar_roots": {"base": [str(self.pillar_dir)]},
            "log_level_logfile": "info",
            # The formula owns any place under the test's temporary folder
            # (issue 19: a minion option, never the pillar).
            "qmail_scratch_roots": [str(root.parent)],
        }
        (root / "minion").write_text(yaml.safe_dump(config))
        self.set_pillar({})

    def add_scratch_root(self, path):
        """Let the formula own ``path`` too (a test folder outside the
        temporary one, e.g. one an unprivileged account must read)."""
        config = yaml.safe_load((self.root / "minion").read_text())
        config["qmail_scratch_roots"].append(str(path))
        (self.root / "minion").write_text(yaml.safe_dump(config))

    def set_pillar(self, pillar):
        """Replace the minion's whole pillar (a dict, e.g. ``{"qmail": {...}}``).
        A pillar with a qmail home of its own keeps the formula's ledger
        beside it, not in this machine's /var/lib."""
        qmail = pillar.get("qmail") if isinstance(pillar, dict) else None
        lookup = qmail.get("lookup") if isinstance(qmail, dict) else None
        if isinstance(lookup, dict) and isinstance(lookup.get("home"), str) and (
                "ledger" not in lookup):
            ledger = str(pathlib.Path(lookup["home"]).parent / "state" / "ledger.json")
            pillar = {**pillar, "qmail": {**qmail, "lookup": {**lookup, "ledger": ledger}}}
        (self.pillar_dir / "qmail.sls").write_text(yaml.safe_dump(pillar))

    def run(self, *args, check=True):
        """Run ``salt-call --local ARGS``; return the parsed ``local`` value."""
        cmd = [str(SALT_CALL), "--local", "-c", str(self.root), "--out=json", "-l", "quiet",
               *args]
        env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
        if SERVER is None:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        else:
            proc = SERVER.run(cmd[1:], env)
        try:
            data = json.loads(proc.stdout)["local"]
        except (ValueError, KeyError):
            raise AssertionError(f"{cmd} gave no JSON:\n{proc.stdout}\n{proc.stderr}") from None
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout}")
        return data

    def call_many(self, cases, workdir):
        """Run each case (see ``render_many.py``) in one Salt process; the
        results in order."""
        cases_path, results_path = workdir / "cases.json", workdir / "results.json"
        cases_path.write_text(json.dumps(cases))
        env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
        proc = subprocess.run(
            [sys.executable, str(HERE / "render_many.py"), str(self.root), str(cases_path),
             str(results_path)], capture_output=True, text=True, env=env, check=False,
            timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = json.loads(results_path.read_text())
        assert len(results) == len(cases)
        return results

    @staticmethod
    def changed(ret):
        """The IDs of the states in a ``state.apply`` return that changed something."""
        return sorted(v["__id__"] for v in ret.values() if v["changes"])

    def apply(self, sls, test=False, check=True, exclude=()):
        """``state.apply SLS``, leaving out the state IDs in ``exclude`` (those
        that need a supervisor this machine does not run); returns the state
        return dict (or render errors)."""
        args = ["state.apply", sls]
        if test:
            args.append("test=True")
        if exclude:
            args.append("exclude=" + json.dumps([{"id": i} for i in exclude]))
        return self.run(*args, check=check)


@pytest.fixture(scope="session", autouse=True)
def salt_call_server():
    """The worker's salt-call server, stopped at the end of the session."""
    yield SERVER
    if SERVER is not None:
        SERVER.stop()


@pytest.fixture(scope="session")
def salt_call_synced(tmp_path_factory):
    """A masterless minion with the formula's modules synced once."""
    minion = SaltCall(tmp_path_factory.mktemp("salt-call"))
    minion.run("saltutil.sync_all")
    return minion


@pytest.fixture
def salt_call(salt_call_synced, tmp_path):
    """The synced minion, its pillar reset, and a fresh qmail home for this test."""
    salt_call_synced.home = tmp_path / "qmail"
    salt_call_synced.set_pillar({})
    return salt_call_synced


@pytest.fixture(scope="session")
def new_salt_call():
    """Make another masterless minion: ``new_salt_call(root, minion_id)``."""
    return SaltCall
