"""
``qmail.service`` through ``salt-call --local`` on this machine (PID 1 here
is not systemd, so the supervisors themselves are proven on lab hosts, in
test/e2e): what the states render for each supervisor and role, the relay
rules compiled by the real tcprules only when they change, the client's
inetd.conf, and the spool's qmail-smtpd under the real tcpserver on
loopback, built from the real qmail source (``QMAIL_SOURCE``, see
lab.source): it relays for ``relay_clients`` only, and without
``rcpthosts`` it neither starts nor takes mail.
"""

import pathlib
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

from lab import source as lab_source

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"
TCPSERVER = shutil.which("tcpserver")
TCPRULES = shutil.which("tcprules")
needs_ucspi = pytest.mark.skipif(
    not (TCPSERVER and TCPRULES), reason="ucspi-tcp (tcpserver, tcprules) is not installed")


def pillar(home, etc, **qmail):
    """Pillar with the qmail home and every OS path of qmail.service under tmp dirs."""
    lookup = {
        "home": str(home),
        "users": {"qmaild": "nobody"},
        "service": {
            "unit_dir": f"{etc}/systemd",
            "tcp_rules": f"{etc}/tcp.smtp",
            "inetd_conf": f"{etc}/inetd.conf",
            "service_dir": f"{etc}/service",
            "boot_script": f"{etc}/rc.local",
        },
    }
    return {"qmail": {"lookup": lookup, **qmail}}


def changed(ret):
    return sorted(v["__id__"] for v in ret.values() if v["changes"])


def ok(ret):
    failed = {k: v["comment"] for k, v in ret.items() if v["result"] is False}
    assert not failed, failed
    return ret


def state_ids(salt_call, sls="qmail.service"):
    ret = salt_call.run("state.show_sls", sls)
    assert isinstance(ret, dict), ret
    return set(ret)


def allows_relay(cdb, address):
    out = subprocess.run(["tcprulescheck", str(cdb)], env={"TCPREMOTEIP": address},
                         capture_output=True, text=True, check=True).stdout
    assert "allow connection" in out
    return "RELAYCLIENT=" in out


@pytest.fixture(params=[False, True], ids=["apply", "test-mode"])
def test_mode(request):
    """Run a case twice: really, and with test=True (which must change nothing)."""
    return request.param


@pytest.fixture
def etc(tmp_path):
    path = tmp_path / "etc"
    path.mkdir()
    return path


# -- what each choice renders --------------------------------------------------
SEND_SYSTEMD = {"qmail-service-send-unit-file-managed"}
SMTPD_SYSTEMD = {"qmail-service-smtpd-unit-file-managed"}
SEND = "qmail-service-send-qmail_service-running"
SMTPD = "qmail-service-smtpd-qmail_service-running"
HUP = "qmail-service-send-hup-qmail_service-send_reloaded"
NEWMRH = "qmail-service-send-morercpthosts-cdb-qmail_service-morercpthosts_compiled"
SMTPD_OFF = {"qmail-service-smtpd-systemd-qmail_service-dead",
             "qmail-service-smtpd-daemontools-qmail_service-dead"}
INETD_LINE = "qmail-service-smtpd-inetd-line-file-replace"
INETD_NO_LINE = "qmail-service-smtpd-inetd-no-line-file-replace"
INETD_RELOAD = "qmail-service-smtpd-inetd-qmail_service-inetd_reloaded"
RULES_CDB = "qmail-service-smtpd-rules-cdb-qmail_service-tcp_rules_compiled"
# qmail-smtpd under tcpserver needs a supervisor (and its unit folder) this
# machine does not have.
NEEDS_SUPERVISOR = [SMTPD, "qmail-service-smtpd-unit-file-managed",
                    "qmail-service-smtpd-qmail_service-enabled"]


@pytest.mark.parametrize("qmail, present, absent", [
    ({"role": "spool", "me": SPOOL}, SEND_SYSTEMD | SMTPD_SYSTEMD | {
        RULES_CDB, SEND, SMTPD, INETD_NO_LINE, INETD_RELOAD},
     SMTPD_OFF | {"qmail-service-svscan-service-running", INETD_LINE}),
    ({"role": "client", "me": CLIENT, "spool": SPOOL}, SEND_SYSTEMD | SMTPD_OFF | {
        INETD_NO_LINE, INETD_RELOAD, SEND},
     SMTPD_SYSTEMD | {"qmail-service-smtpd-rules-file-managed", SMTPD, INETD_LINE}),
    ({"role": "spool", "me": SPOOL, "service": {"supervisor": "daemontools"}}, {
        "qmail-service-svscan-service-running", "qmail-service-send-link-file-symlink",
        SEND, SMTPD, "qmail-service-smtpd-link-file-symlink"},
     SEND_SYSTEMD | SMTPD_SYSTEMD | SMTPD_OFF),
    ({"role": "spool", "me": SPOOL, "service": {"supervisor": "bootscript", "smtpd": "inetd"}},
     {"qmail-service-send-bootscript-file-blockreplace", SEND, INETD_LINE, INETD_RELOAD}
     | SMTPD_OFF,
     SEND_SYSTEMD | SMTPD_SYSTEMD | {"qmail-service-smtpd-rules-file-managed", SMTPD,
                                     INETD_NO_LINE}),
], ids=["spool-systemd", "client-systemd", "spool-daemontools", "spool-bootscript-inetd"])
def test_each_choice_renders_its_states(salt_call, etc, qmail, present, absent):
    salt_call.set_pillar(pillar(salt_call.home, etc, **qmail))
    ids = state_ids(salt_call)
    assert present <= ids
    assert not absent & ids


def watched(ret, state_id):
    args = next(iter(v for k, v in ret[state_id].items() if not k.startswith("__")))
    return next(a["watch"] for a in args if isinstance(a, dict) and "watch" in a)


def test_morercpthosts_change_rebuilds_its_cdb(salt_call, etc):
    salt_call.set_pillar(pillar(salt_call.home, etc, me=SPOOL,
                                control={"morercpthosts": ["example.org"]}))
    ret = salt_call.run("state.show_sls", "qmail.service")
    # The newmrh state's mod_watch runs qmail-newmrh when the file changes.
    assert {"qmail_control": "qmail-control-file-managed-morercpthosts"} in watched(ret, NEWMRH)
    salt_call.set_pillar(pillar(salt_call.home, etc, me=SPOOL,
                                control={"morercpthosts": None}))
    ret = salt_call.run("state.show_sls", "qmail.service")
    drop = ret["qmail-service-send-morercpthosts-cdb-file-absent"]["file"]
    assert {"name": f"{salt_call.home}/control/morercpthosts.cdb"} in drop


def test_control_changes_reach_qmail_send_the_right_way(salt_call, etc):
    salt_call.set_pillar(pillar(salt_call.home, etc, me=SPOOL,
                                control={"virtualdomains": ["lists.example.org:lists"],
                                         "concurrencyremote": 40, "databytes": 1000000}))
    ret = salt_call.run("state.show_sls", "qmail.service")
    watch = watched(ret, SEND)
    # HUP: the HUP state watches these two, qmail-send's restart does not.
    hup = watched(ret, HUP)
    assert {"qmail_control": "qmail-control-file-managed-locals"} in hup
    assert {"qmail_control": "qmail-control-file-managed-virtualdomains"} in hup
    assert not [w for w in watch if "locals" in str(w) or "virtualdomains" in str(w)]
    # Restart.
    assert {"qmail_control": "qmail-control-file-managed-concurrencyremote"} in watch
    assert {"qmail_control": "qmail-control-file-managed-me"} in watch
    # Read per message by qmail-smtpd: nothing to tell anyone.
    assert not [w for w in watch + hup if "databytes" in str(w)]
    assert not [w for w in watched(ret, SMTPD) if "qmail_control" in w]


def test_bad_choice_fails_before_any_change(salt_call, etc):
    salt_call.set_pillar(pillar(salt_call.home, etc, me=SPOOL,
                                relay_clients=["10.1.2.0/24", "0.0.0.0/0"]))
    ret = salt_call.apply("qmail.service", check=False)
    assert "qmail:relay_clients[1]: '0.0.0.0/0' is wider than /8" in "".join(ret)
    assert not salt_call.home.exists()
    assert list(etc.iterdir()) == []


# -- relay rules ----------------------------------------------------------------
@needs_ucspi
def test_relay_rules_compiled_only_when_they_change(salt_call, etc, test_mode):
    salt_call.set_pillar(pillar(salt_call.home, etc, me=SPOOL,
                                relay_clients=["10.1.2.0/24", "10.9.0.7"]))
    sls = "qmail.service.smtpd"
    if test_mode:
        ret = ok(salt_call.apply(sls, test=True, exclude=NEEDS_SUPERVISOR))
        assert RULES_CDB in {v["__id__"] for v in ret.values() if v["result"] is None}
        assert list(etc.iterdir()) == [] and not salt_call.home.exists()
        return
    ok(salt_call.apply(sls, exclude=NEEDS_SUPERVISOR))
    assert (etc / "tcp.smtp").read_text().splitlines()[-3:] == [
        '10.1.2.:allow,RELAYCLIENT=""', '10.9.0.7:allow,RELAYCLIENT=""', ":allow"]
    cdb = etc / "tcp.smtp.cdb"
    assert allows_relay(cdb, "10.1.2.99") and allows_relay(cdb, "10.9.0.7")
    assert not allows_relay(cdb, "10.9.0.8") and not allows_relay(cdb, "192.0.2.1")
    compiled = cdb.stat().st_mtime_ns

    assert changed(ok(salt_call.apply(sls, exclude=NEEDS_SUPERVISOR))) == []
    assert cdb.stat().st_mtime_ns == compiled

    salt_call.set_pillar(pillar(salt_call.home, etc, me=SPOOL, relay_clients=["10.9.0.8"]))
    assert changed(ok(salt_call.apply(sls, exclude=NEEDS_SUPERVISOR))) == [
        RULES_CDB, "qmail-service-smtpd-rules-file-managed"]
    assert allows_relay(cdb, "10.9.0.8") and not allows_relay(cdb, "10.1.2.99")

    cdb.unlink()  # lost, source unchanged: compiled again
    assert changed(ok(salt_call.apply(sls, exclude=NEEDS_SUPERVISOR))) == [RULES_CDB]
    assert allows_relay(cdb, "10.9.0.8")


INETD = """\
# /etc/inetd.conf
ftp\tstream\ttcp\tnowait\troot\t/usr/sbin/tcpd\t/usr/sbin/in.ftpd
smtp\tstream\ttcp\tnowait\tqmaild\t/var/qmail/bin/tcp-env tcp-env /var/qmail/bin/qmail-smtpd
#smtp stream tcp nowait qmaild /var/qmail/bin/tcp-env tcp-env /var/qmail/bin/qmail-smtpd
"""


def test_client_inetd_conf_loses_its_smtpd_line(salt_call, etc, test_mode):
    """Seed §5.1: a client takes no mail; other services and comments stay."""
    (etc / "inetd.conf").write_text(INETD)
    salt_call.set_pillar(pillar(salt_call.home, etc, role="client", me=CLIENT, spool=SPOOL))
    ret = ok(salt_call.apply("qmail.service.smtpd", test=test_mode))
    if test_mode:
        assert (etc / "inetd.conf").read_text() == INETD
        assert ret and all(v["result"] is not False for v in ret.values())
        return
    assert (etc / "inetd.conf").read_text() == "".join(
        line + "\n" for line in INETD.splitlines() if not line.startswith("smtp"))
    assert changed(ok(salt_call.apply("qmail.service.smtpd"))) == []


def test_client_without_inetd_conf_is_fine(salt_call, etc):
    salt_call.set_pillar(pillar(salt_call.home, etc, role="client", me=CLIENT, spool=SPOOL))
    assert changed(ok(salt_call.apply("qmail.service.smtpd"))) == []
    assert not (etc / "inetd.conf").exists()


# -- qmail-smtpd for real, on loopback --------------------------------------------
@pytest.fixture(scope="module")
def smtpd_home():
    """
    A qmail home that the unprivileged SMTP account (nobody here) can read,
    with a real qmail-smtpd built from the qmail source (lab.source) for that home.
    """
    try:
        source = lab_source.locate().path
    except lab_source.SourceUnavailable as exc:
        pytest.skip(str(exc))
    if not (TCPSERVER and TCPRULES):
        pytest.skip("ucspi-tcp (tcpserver, tcprules) is not installed")
    if not shutil.which("cc"):
        pytest.skip("no C compiler to build qmail-smtpd")
    top = pathlib.Path(tempfile.mkdtemp(prefix="qmail-it-", dir="/tmp"))
    top.chmod(0o755)
    home = top / "qmail"
    try:
        (top / "src").mkdir()
        subprocess.run(["tar", "-xf", source, "-C", str(top / "src")], check=True)
        src = next((top / "src").iterdir())
        (src / "conf-qmail").write_text(f"{home}\n")
        subprocess.run(["make", "qmail-smtpd"], cwd=src, check=True, capture_output=True)
        (home / "bin").mkdir(parents=True)
        shutil.copy(src / "qmail-smtpd", home / "bin" / "qmail-smtpd")
        yield home
    finally:
        shutil.rmtree(top, ignore_errors=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Smtpd:
    """The rendered run script, started as its supervisor would; its output
    (tcpserver's -v lines) in a file, read while it runs."""

    def __init__(self, home, port, log):
        self.home, self.port, self.log = home, port, log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(["/bin/sh", str(home / "supervise/qmail-smtpd/run")],
                                         stdout=out, stderr=subprocess.STDOUT)

    def output(self):
        return self.log.read_text()

    def wait_listening(self, timeout=60):
        """Until tcpserver itself says it listens (its first ``status:``
        line comes after the bind): a probe connection could reach another
        process that took the port. False when the port was taken."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "tcpserver: status: 0/" in self.output():
                return True
            if self.proc.poll() is not None:
                if "unable to bind" in self.output():
                    return False
                raise AssertionError(self.output())
            time.sleep(0.05)
        raise AssertionError(f"tcpserver is not listening: {self.output()!r}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)


def rcpt(port, address, source="127.0.0.1"):
    """RCPT TO ``address`` from ``source``; the reply code (or the greeting's)."""
    with smtplib.SMTP(timeout=10, source_address=(source, 0)) as smtp:
        code, _ = smtp.connect("127.0.0.1", port)
        if code != 220:
            return code
        smtp.helo("test.example")
        smtp.mail("sender@example.net")
        return smtp.rcpt(address)[0]


@pytest.fixture
def smtpd(salt_call, smtpd_home, etc, tmp_path):
    salt_call.add_scratch_root(smtpd_home.parent)  # /tmp/qmail-it-*: nobody reads it
    control = smtpd_home / "control"
    shutil.rmtree(control, ignore_errors=True)
    etc.chmod(0o755)
    for parent in etc.parents:
        if parent == pathlib.Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)  # nobody reads the rules
    started, port = [], [None]

    def configure():
        port[0] = free_port()
        salt_call.set_pillar(pillar(smtpd_home, etc, me=SPOOL, relay_clients=["127.0.0.2/32"],
                                    service={"smtpd_port": port[0]}))
        ok(salt_call.apply("qmail.service.smtpd", exclude=NEEDS_SUPERVISOR))

    def start(listen=True):
        """The run script started; with ``listen``, once it listens (a port
        another process took between free_port and the bind: a new one)."""
        for _attempt in range(5):
            server = Smtpd(smtpd_home, port[0], tmp_path / f"smtpd-{len(started)}.log")
            started.append(server)
            if not listen or server.wait_listening():
                return server
            configure()
        raise AssertionError("no free port in 5 tries")

    configure()
    yield start
    for server in started:
        server.stop()


def test_spool_relays_for_relay_clients_only(smtpd):
    port = smtpd().port
    assert rcpt(port, "someone@example.org") == 553  # not a relay client
    assert rcpt(port, f"someone@{SPOOL}") == 250  # in rcpthosts: anyone may send
    assert rcpt(port, "someone@example.org", source="127.0.0.2") == 250


def test_smtpd_never_runs_as_an_open_relay(smtpd, smtpd_home):
    server = smtpd()
    (smtpd_home / "control" / "rcpthosts").unlink()
    # Already running: each connection is refused while rcpthosts is missing.
    assert rcpt(server.port, "someone@example.org", source="127.0.0.2") == 421
    assert rcpt(server.port, "someone@example.org") == 421
    server.stop()
    # Not running: it refuses to start at all.
    again = smtpd(listen=False)
    assert again.proc.wait(10) == 1
    assert "rcpthosts is missing" in again.output()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_spool_under_inetd_gets_its_line_and_inetd_is_told(salt_call, etc):
    """The seed's way: one qmail-smtpd line, through tcp-env and the wrapper."""
    (etc / "inetd.conf").write_text(INETD)
    salt_call.set_pillar(pillar(salt_call.home, etc, me=SPOOL,
                                service={"supervisor": "bootscript", "smtpd": "inetd"}))
    ret = salt_call.apply("qmail.service.smtpd", check=False)
    home = salt_call.home
    line = (f"smtp stream tcp nowait nobody {home}/bin/tcp-env tcp-env "
            f"/bin/sh {home}/supervise/qmail-smtpd/smtpd")
    assert (etc / "inetd.conf").read_text().splitlines() == [
        "# /etc/inetd.conf",
        "ftp\tstream\ttcp\tnowait\troot\t/usr/sbin/tcpd\t/usr/sbin/in.ftpd",
        line,
        "#smtp stream tcp nowait qmaild /var/qmail/bin/tcp-env tcp-env "
        "/var/qmail/bin/qmail-smtpd",
    ]
    assert (home / "supervise/qmail-smtpd/smtpd").stat().st_mode & 0o777 == 0o755
    # No inetd runs here: the formula says so instead of pretending.
    reload = next(v for v in ret.values() if v["__id__"] == INETD_RELOAD)
    assert reload["result"] is False
    assert "no inetd is running" in reload["comment"]
    # The line is in place: nothing to change, nothing to tell inetd.
    assert changed(ok(salt_call.apply("qmail.service.smtpd"))) == []
