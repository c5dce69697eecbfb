"""
The chain for real: the daemon (qmail/files/default/filter/qmail-filterd,
Debian's python3 with python3-dkim) listening on a socket in the test's
folder, and its client qmail-filter (perl) run as qmail-smtpd runs a
QMAILQUEUE program: message on fd 0, envelope on fd 1, fd 6 for notqmail's
refusal text, and a stand-in qmail-queue (a shell script) that stores what
it gets. The lab tests (test/e2e/test_filter_lab.py) run them under real
qmail and a real supervisor.
"""

import json
import os
import pathlib
import pwd
import shutil
import signal
import subprocess

import pytest

from lab.wait import wait_until

REPO = pathlib.Path(__file__).resolve().parents[2]
FILES = REPO / "qmail/files/default/filter"
PYTHON = "/usr/bin/python3"
PERL = "/usr/bin/perl"
MESSAGE = (b"From: Some One <someone@example.org>\nTo: x@outside.example\n"
           b"Subject: hello\nDate: Sun, 06 Dec 2026 07:00:00 +0000\n"
           b"Message-ID: <1@example.org>\n\nbody line\n")
ENVELOPE = b"Fsomeone@example.org\0Tx@outside.example\0\0"


def _has(module):
    return shutil.which(PYTHON) and subprocess.run(
        [PYTHON, "-c", f"import {module}"], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _has("dkim"), reason="needs Debian's python3-dkim "
                                "(bin/host-packages installs it)")


@pytest.fixture
def chain(tmp_path, loaders):
    """A filter folder: the daemon running (as this user), its client, a key
    made by qmail_filter_keys, and a stand-in qmail-queue that stores fd 0
    and fd 1 and exits as told."""
    folder = tmp_path / "filter"
    folder.mkdir()
    for name, variable, interpreter in (("qmail-filterd", "{{ python }}", PYTHON),
                                        ("qmail-filter", "{{ perl }}", PERL)):
        (folder / name).write_text((FILES / name).read_text().replace(variable, interpreter))
        (folder / name).chmod(0o755)
    program = folder / "qmail-filter"
    keyfile = folder / "s1.example.org.key"
    keyfile.write_bytes(loaders.utils["qmail_filter_keys.generate"]("rsa"))
    out = tmp_path / "queued"
    queue = tmp_path / "qmail-queue"
    queue.write_text(f"#!/bin/sh\ncat > {out}.msg\ncat <&1 > {out}.env\n"
                     f"exit ${{QQ_EXIT:-0}}\n")
    queue.chmod(0o755)
    socket = tmp_path / "run" / "socket"
    (folder / "filter.json").write_text(json.dumps({"steps": []}))
    me = pwd.getpwuid(os.getuid()).pw_name  # the test's files are this user's alone
    daemon = subprocess.Popen([str(folder / "qmail-filterd"), str(socket), me],
                              stderr=subprocess.PIPE)
    wait_until(lambda: socket.exists() or daemon.poll() is not None, 30,
               what="qmail-filterd listening")
    assert daemon.poll() is None, daemon.stderr.read()

    def client_conf(custom):
        (folder / "qmail-filter.conf").write_text(
            f"socket={socket}\nqmail_queue={queue}\ncustom_errors={int(custom)}\n"
            "timeout=60\n")

    class Chain:
        key = keyfile
        process = daemon
        record = loaders.utils["qmail_filter_keys.record"](keyfile.read_bytes())

        def configure(self, steps, custom=True):
            """filter.json for the daemon (read again when it changes), the
            client's conf."""
            (folder / "filter.json").write_text(json.dumps({
                "qmail_queue": str(queue), "custom_errors": custom, "steps": steps}))
            client_conf(custom)

        def run(self, env, message=MESSAGE, envelope=ENVELOPE):
            """Exit code, the stored message (None: nothing queued), fd 6's text."""
            for suffix in (".msg", ".env"):
                pathlib.Path(f"{out}{suffix}").unlink(missing_ok=True)
            menv, wenv = os.pipe()
            rerr, werr = os.pipe()
            os.write(wenv, envelope)
            os.close(wenv)
            proc = subprocess.run([str(program)], input=message, stdout=menv,
                                  close_fds=False, env=env,
                                  stderr=subprocess.PIPE, check=False,
                                  preexec_fn=lambda: os.dup2(werr, 6))
            os.close(menv)
            os.close(werr)
            text = os.read(rerr, 1024).decode()
            os.close(rerr)
            queued = pathlib.Path(f"{out}.msg")
            return proc.returncode, queued.read_bytes() if queued.exists() else None, text

        def verify(self, message):
            """dkimpy's verdict with the record as the only DNS answer."""
            script = ("import dkim, sys\nrec = sys.argv[1].encode()\n"
                      "ok = dkim.verify(sys.stdin.buffer.read(), "
                      "dnsfunc=lambda name, timeout=5: rec)\nsys.exit(0 if ok else 1)\n")
            return subprocess.run([PYTHON, "-c", script, self.record], input=message,
                                  check=False).returncode == 0

    the_chain = Chain()
    the_chain.dkim = {"name": "dkim", "required": True, "timeout": 10, "domains": {
        "example.org": {"selector": "s1", "algorithm": "rsa", "file": str(keyfile)}}}
    yield the_chain
    daemon.terminate()
    daemon.wait(30)
    assert not socket.exists()  # removed on TERM


def test_a_stop_reaps_the_workers_before_the_daemon_ends(chain):
    """A supervisor that waits for the service's last process (systemd on a
    cgroup v1 host without empty-cgroup events) sees the workers go with
    the daemon: none of them is left once its main process has ended."""
    daemon = chain.process
    children = pathlib.Path(f"/proc/{daemon.pid}/task/{daemon.pid}/children")
    workers = wait_until(lambda: children.read_text().split(), 30, what="the workers")
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(30)
    assert [pid for pid in workers if pathlib.Path(f"/proc/{pid}").exists()] == []


def test_a_stop_while_the_steps_modules_load_removes_the_socket(tmp_path):
    """The socket exists before dkimpy and pyspf are loaded: a TERM then
    (systemctl stop right after a start) still removes it. A stand-in dkim
    whose import never ends holds the daemon in that moment."""
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "dkim.py").write_text("import time\ntime.sleep(600)\n")
    socket = tmp_path / "run" / "socket"
    me = pwd.getpwuid(os.getuid()).pw_name
    daemon = subprocess.Popen([
        PYTHON, "-I", "-c",
        "import runpy, sys\nsys.path.insert(0, sys.argv[1])\nsys.argv = sys.argv[2:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n",
        str(stub), str(FILES / "qmail-filterd"), str(socket), me])
    try:
        wait_until(lambda: socket.exists() or daemon.poll() is not None, 60,
                   interval=0.05, what="qmail-filterd bound")
        daemon.terminate()
        assert daemon.wait(30) == 0
        assert not socket.exists()
    finally:
        daemon.kill()
        daemon.wait()


RELAY = {"TCPREMOTEIP": "10.0.0.2", "RELAYCLIENT": "", "PATH": "/usr/bin:/bin"}
INBOUND = {"TCPREMOTEIP": "192.0.2.7", "PATH": "/usr/bin:/bin"}


def test_relay_client_mail_is_signed_and_verifies(chain):
    chain.configure([chain.dkim])
    code, queued, _ = chain.run(RELAY)
    assert code == 0
    assert queued.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "
                             b"d=example.org;")
    assert b"s=s1" in queued and queued.endswith(MESSAGE)  # the rest unchanged
    assert chain.verify(queued)
    assert not chain.verify(queued.replace(b"body line", b"body 1ine"))


def test_rsa_is_openssls_and_the_signature_the_same(tmp_path, loaders):
    """With python3-cryptography the daemon hands dkimpy's RSA step to
    OpenSSL: the signature is byte for byte dkimpy's own (PKCS#1 v1.5 is
    deterministic), and dkimpy verifies it."""
    key = loaders.utils["qmail_filter_keys.generate"]("rsa")
    record = loaders.utils["qmail_filter_keys.record"](key)
    (tmp_path / "key").write_bytes(key)
    script = (
        "import importlib.machinery, re, sys, time\n"
        "time.time = lambda: 1796549000.0  # one t= for both signatures\n"
        "prog = importlib.machinery.SourceFileLoader('prog', sys.argv[1]).load_module()\n"
        "dkim = prog.import_dkim()\n"
        "import dkim.crypto\n"
        "assert dkim.RSASSA_PKCS1_v1_5_sign is not dkim.crypto.RSASSA_PKCS1_v1_5_sign\n"
        "key, msg = open(sys.argv[2], 'rb').read(), sys.stdin.buffer.read()\n"
        "args = dict(canonicalize=(b'relaxed', b'relaxed'), linesep=b'\\n')\n"
        "fast = dkim.sign(msg, b's1', b'example.org', key, **args)\n"
        "dkim.RSASSA_PKCS1_v1_5_sign = dkim.crypto.RSASSA_PKCS1_v1_5_sign\n"
        "slow = dkim.sign(msg, b's1', b'example.org', key, **args)\n"
        "b = lambda s: re.search(rb'\\bb=([^;]*)$', s.replace(b'\\n ', b''), re.S).group(1)\n"
        "assert b(fast) == b(slow), (fast, slow)\n"
        "rec = sys.argv[3].encode()\n"
        "assert dkim.verify(fast + msg, dnsfunc=lambda name, timeout=5: rec)\n")
    proc = subprocess.run([PYTHON, "-c", script, str(FILES / "qmail-filterd"),
                           str(tmp_path / "key"), record], input=MESSAGE,
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()


def test_an_ed25519_key_signs_and_verifies(chain, loaders):
    """The program keeps PyNaCl unloaded for RSA keys only (see its
    import_dkim): an Ed25519 key still signs."""
    chain.key.write_bytes(loaders.utils["qmail_filter_keys.generate"]("ed25519"))
    chain.record = loaders.utils["qmail_filter_keys.record"](chain.key.read_bytes())
    chain.dkim["domains"]["example.org"]["algorithm"] = "ed25519"
    chain.configure([chain.dkim])
    code, queued, _ = chain.run(RELAY)
    assert code == 0 and queued.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    assert chain.verify(queued)


def test_local_injection_is_signed_inbound_is_not(chain):
    chain.configure([chain.dkim])
    assert chain.run({"PATH": "/usr/bin:/bin"})[1].startswith(b"DKIM-Signature:")
    code, queued, _ = chain.run(INBOUND)
    assert code == 0 and queued == MESSAGE


def test_other_domains_pass_unsigned(chain):
    chain.configure([chain.dkim])
    message = MESSAGE.replace(b"someone@example.org", b"someone@elsewhere.example")
    assert chain.run(RELAY, message=message)[1] == message


def test_unreadable_key_is_a_temporary_refusal_and_nothing_queued(chain):
    chain.configure([chain.dkim])
    chain.key.rename(chain.key.with_suffix(".gone"))
    code, queued, text = chain.run(RELAY)
    assert (code, queued) == (82, None)
    assert text.startswith("Zdkim failed") and "(#4.3.0)" in text
    # netqmail 1.06 reads no fd 6: a plain temporary code.
    chain.configure([chain.dkim], custom=False)
    assert chain.run(RELAY)[:2] == (71, None)
    # Not required: passed on unsigned.
    chain.configure([dict(chain.dkim, required=False)])
    assert chain.run(RELAY)[:2] == (0, MESSAGE)


def _spamassassin(spamc, timeout):
    """The spamassassin step with ``spamc`` (a path) and a spamd port where
    nothing listens."""
    return {"name": "spamassassin", "required": True, "timeout": timeout, "reject_score": 0,
            "max_size": 512000, "user": "", "spamc": str(spamc), "host": "127.0.0.1",
            "port": 1}


def _stand_in(path, script):
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_spamd_unreachable_tempfails(chain, tmp_path):
    # Debian's spamc, or a stand-in that cannot connect, as spamc -x exits.
    spamc = shutil.which("spamc") or _stand_in(
        tmp_path / "spamc", "echo 'connect to spamd failed' >&2\nexit 69")
    chain.configure([_spamassassin(spamc, 5)])
    code, queued, text = chain.run(INBOUND)
    assert (code, queued) == (82, None) and text.startswith("Zspamassassin failed")


def test_a_step_that_never_answers_is_cut_at_its_timeout_and_tempfails(chain, tmp_path):
    """A step that hangs (here a spamc that never returns) is stopped by the
    step's own time limit: a temporary refusal when required, nothing queued;
    passed on unchecked only when the step is not required."""
    step = _spamassassin(_stand_in(tmp_path / "spamc-hangs", "exec sleep 3600"), 1)
    chain.configure([step])
    code, queued, text = chain.run(INBOUND)
    assert (code, queued) == (82, None)
    assert text.startswith("Zspamassassin took longer than 1 s") and "(#4.3.0)" in text
    chain.configure([dict(step, required=False)])
    assert chain.run(INBOUND)[:2] == (0, MESSAGE)


def test_daemon_down_is_a_temporary_refusal_and_nothing_queued(chain):
    chain.configure([chain.dkim])
    chain.process.terminate()
    chain.process.wait(30)
    code, queued, text = chain.run(RELAY)
    assert (code, queued) == (82, None)
    assert text.startswith("Zqmail-filterd is not running") and "(#4.3.0)" in text


def test_bad_envelope_is_a_read_error(chain):
    chain.configure([chain.dkim])
    assert chain.run(RELAY, envelope=b"garbage")[:2] == (54, None)


def test_qmail_queue_exit_code_is_the_filters(chain, monkeypatch):
    chain.configure([chain.dkim])
    assert chain.run(dict(RELAY, QQ_EXIT="53"))[0] == 53


# The spf step inside the program, python3-spf's DNS answered by a stub:
# the records of example.org (-all) and soft.example (~all).
SPF_SCRIPT = """\
import importlib.machinery, json, sys
import spf
records = {"example.org": "v=spf1 ip4:192.0.2.1 -all", "soft.example": "v=spf1 ip4:192.0.2.1 ~all"}
def lookup(name, qtype, *args, **kwargs):
    if qtype == "TXT" and name in records:
        return [((name, qtype), [records[name].encode()])]
    return []
spf.DNSLookup = lookup
prog = importlib.machinery.SourceFileLoader("prog", sys.argv[1]).load_module()
conf = {"reject_fail": sys.argv[3] == "reject", "timeout": 5}
mail = prog.Mail(b"Subject: x\\n\\nx\\n", sys.argv[2], ["a@b.example"],
                 {"TCPREMOTEIP": "203.0.113.9"})
try:
    verdict = prog.step_spf(mail, conf)
    print(json.dumps({"verdict": verdict, "message": mail.message.decode()}))
except prog.Refused as r:
    print(json.dumps({"refused": r.text, "temporary": r.temporary}))
"""


@pytest.mark.skipif(not _has("spf"), reason="needs Debian's python3-spf")
@pytest.mark.parametrize(("sender", "mode", "expect"), [
    ("someone@example.org", "reject", {"refused": True}),
    ("someone@example.org", "tag", {"header": "Received-SPF: fail"}),
    ("someone@soft.example", "reject", {"header": "Received-SPF: softfail"}),
])
def test_spf_step_refuses_fail_only_when_configured(chain, tmp_path, sender, mode, expect):
    program = tmp_path / "filter" / "qmail-filterd"
    proc = subprocess.run([PYTHON, "-c", SPF_SCRIPT, str(program), sender, mode],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    if "refused" in expect:
        assert not got["temporary"] and "SPF fail" in got["refused"] and "5.7.23" in got[
            "refused"]
    else:
        assert got["message"].startswith(expect["header"])
        assert "client-ip=203.0.113.9;" in got["message"]
