"""
Mail from anywhere (issue 22): authenticated submission on 465 and a
smarthost with credentials, on real hosts with the patched build (notqmail
1.09 + the SMTP AUTH patch of ``../shared/sources/patches/``, compiled once
by lab.buildcache) and Debian's cvm:

- ``ccs``: a spool with ``qmail:tls`` (465) and ``qmail:submission``
  (alice: yescrypt, bob: sha512-crypt), and ``qmail:smarthost`` pointing at
  ``isp`` as carol;
- ``isp``: a second spool playing the ISP's server: its own submission users
  (carol), and a plain listener on 587 that the test adds by hand
  (tcpserver running the formula's submission wrapper: AUTH required, no
  TLS, as qmail-remote, which has no TLS, can speak to it). The formula
  itself never offers AUTH without TLS.

What a user checks: 465 announces AUTH; a good login 235, a bad one 535;
MAIL without AUTH 530; after AUTH, mail to an outside domain is queued for
remote delivery; port 25 never shows AUTH, before or after STARTTLS; a
password changed in pillar works at the next login with the same
qmail-smtpsd; the ISP gets the spool's mail only with the right
credentials; the credentials appear in no state output, test=True output,
rendered SLS or log; a second apply changes nothing.

The tests share the hosts and run in this file's order.
"""

import json
import uuid
import warnings

import pytest

from lab import smtp
from lab import source as lab_source
from lab.buildcache import source_pillar
from lab.fleet import Fleet, changed
from lab.wait import wait_until

with warnings.catch_warnings():  # crypt(3) as mkpasswd uses it (Python 3.11 here)
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

pytestmark = pytest.mark.lab

SPOOL = "ccs.cla.kobe-u.ac.jp"
ISP = "isp.cla.kobe-u.ac.jp"
MAILDIR = "/home/someone/Maildir"
PASSWD = "/var/qmail/supervise/qmail-smtpsd/passwd"
AUTHSENDERS = "/var/qmail/control/authsenders"
PASSWD_STATE = "qmail-service-submission-passwd-qmail_submission-passwd_managed"
AUTHSENDERS_STATE = "qmail-control-authsenders-qmail_submission-authsenders_managed"


def sha512_crypt(password):
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def yescrypt(password):
    """libxcrypt's yescrypt at its default cost (what mkpasswd -m yescrypt gives)."""
    return crypt.crypt(password, "$y$j9T$" + crypt.mksalt(crypt.METHOD_SHA512)[3:] + "$")


class SubmissionLab(Fleet):
    def __init__(self, master, hosts, source, build):
        super().__init__(master, hosts)
        self.spool, self.isp = self.hosts[SPOOL], self.hosts[ISP]
        self.source, self.build = source, build
        self.passwords = {"alice": f"alice-{uuid.uuid4().hex[:12]}",
                          "bob": f"bob {uuid.uuid4().hex[:12]}",
                          "carol": f"carol|{uuid.uuid4().hex[:12]}"}
        self.hashes = {"alice": yescrypt(self.passwords["alice"]),
                       "bob": sha512_crypt(self.passwords["bob"]),
                       "carol": yescrypt(self.passwords["carol"])}
        self.smarthost_password = f"wrong-{uuid.uuid4().hex[:12]}"

    def secrets(self):
        """What must never show: every password and the smarthost's."""
        return [*self.passwords.values(), self.smarthost_password]

    def pillars(self):
        base = {"role": "spool", "source": self.source, "build": self.build,
                "tls": {"enable": True, "smtps": True}}
        spool = dict(base, submission={"enable": True, "users": {
                         "alice": self.hashes["alice"], "bob": self.hashes["bob"]}},
                     smarthost={"host": ISP, "port": 587, "user": "carol",
                                "password": self.smarthost_password},
                     # The patch's qmail-remote reads a second reply after a
                     # refused AUTH: without a short timeout a wrong password
                     # stalls each attempt for 1200 s before the deferral.
                     control={"timeoutremote": 15})
        isp = dict(base, submission={"enable": True, "users": {"carol": self.hashes["carol"]}})
        return {SPOOL: {"qmail": spool}, ISP: {"qmail": isp}}

    def session(self, host, **kwargs):
        return smtp.auth_session(host.ip, host.fqdn, **kwargs)

    def message(self, subject, to):
        return f"From: alice@{SPOOL}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{subject}\r\n"

    def start_isp_587(self):
        """The ISP's plain submission port: the formula's wrapper (AUTH
        required, cvm-pwfile) under a tcpserver of the test's own, as qmaild."""
        uid = self.isp.run(["id", "-u", "qmaild"], check=True).stdout.strip()
        gid = self.isp.run(["id", "-g", "qmaild"], check=True).stdout.strip()
        self.isp.run(["systemd-run", "--unit=isp-submission-587", "/usr/bin/tcpserver", "-R",
                      "-H", "-u", uid, "-g", gid, "0", "587", "/bin/sh",
                      "/var/qmail/supervise/qmail-smtpsd/submission"], check=True)
        self.isp.wait_listening(587, 60)


@pytest.fixture(scope="module")
def sublab(lab_master, lab_hosts_module, qmail_source):
    try:
        patch = lab_source.smtp_auth_patch()
    except lab_source.SourceUnavailable as exc:
        pytest.skip(str(exc))
    hosts = lab_hosts_module([SPOOL, ISP])  # tlswrapper: Debian 12 and later
    the_lab = SubmissionLab(lab_master, hosts, source_pillar(lab_master, qmail_source, [patch]),
                            lab_master.prebuilt(qmail_source, patches=[patch]))
    the_lab.converge(the_lab.pillars(), mail_users={SPOOL: "someone", ISP: "someone"})
    the_lab.outputs = [json.dumps(the_lab.first_apply)]
    the_lab.start_isp_587()
    return the_lab


def test_465_announces_auth_and_port_25_never_does(sublab):
    got = sublab.session(sublab.spool)
    assert got["greeting"] == 220
    assert set(got["ehlo"]["auth"].split()) == {"LOGIN", "PLAIN"}
    plain25 = sublab.session(sublab.spool, port=25, implicit=False, starttls=True)
    assert plain25["starttls"] == 220
    assert "auth" not in plain25["ehlo"] and "auth" not in plain25["ehlo_tls"]
    assert "starttls" in plain25["ehlo"]


def test_files_belong_to_their_readers_alone(sublab):
    def stat(host, path):
        return host.run(["stat", "-c", "%a %U", path], check=True).stdout.split()

    assert stat(sublab.spool, PASSWD) == ["400", "qmaild"]
    assert stat(sublab.spool, AUTHSENDERS) == ["400", "qmailr"]
    assert sublab.spool.run(["dpkg-query", "-W", "cvm"]).returncode == 0


@pytest.mark.parametrize("method", ["PLAIN", "LOGIN"])
def test_good_login_235_bad_login_535(sublab, method):
    good = sublab.session(sublab.spool, login=("alice", sublab.passwords["alice"]),
                          method=method)
    assert good["auth"] == 235
    bad = sublab.session(sublab.spool, login=("alice", sublab.passwords["bob"]), method=method)
    assert bad["auth"] == 535
    nobody = sublab.session(sublab.spool, login=("mallory", "x"), method=method)
    assert nobody["auth"] == 535


def test_mail_without_auth_is_530(sublab):
    got = sublab.session(sublab.spool, sender="alice@example.org", rcpts=[f"someone@{SPOOL}"])
    assert got["mail"] == 530 and got["rcpt"] == []


def test_after_auth_outside_mail_is_queued_for_remote_delivery(sublab):
    subject = f"submitted {uuid.uuid4().hex}"
    to = "someone@example.org"
    got = sublab.session(sublab.spool, login=("bob", sublab.passwords["bob"]),
                         sender=f"bob@{SPOOL}", rcpts=[to], message=sublab.message(subject, to))
    assert got["auth"] == 235 and got["rcpt"] == [250] and got["data"] == 250
    wait_until(lambda: any(f"to remote {to}" in line for line in
                           sublab.call(SPOOL, "qmail_service.logs", "qmail-send", lines=500)),
               120, what="qmail-send starting the remote delivery")
    # The log names who authenticated (never the password).
    smtpsd = sublab.call(SPOOL, "qmail_service.logs", "qmail-smtpsd", lines=500)
    assert any("AUTH ok: user bob" in line for line in smtpsd), smtpsd[-20:]


def test_a_password_changed_in_pillar_works_with_the_same_qmail_smtpsd(sublab):
    pid = sublab.call(SPOOL, "qmail_service.service_pid", "qmail-smtpsd")
    old = sublab.passwords["alice"]
    sublab.passwords["alice"] = f"alice-new-{uuid.uuid4().hex[:12]}"
    sublab.hashes["alice"] = sha512_crypt(sublab.passwords["alice"])
    sublab.master.set_pillar(sublab.pillars())
    ret = sublab.apply(target=SPOOL)
    sublab.outputs.append(json.dumps(ret))
    assert changed(ret)[SPOOL] == [PASSWD_STATE]
    state = next(v for v in ret[SPOOL].values() if v["__id__"] == PASSWD_STATE)
    assert state["changes"] == {"password changed": ["alice"]}
    assert sublab.session(sublab.spool, login=("alice", old))["auth"] == 535
    assert sublab.session(sublab.spool, login=("alice", sublab.passwords["alice"]))["auth"] == 235
    assert sublab.call(SPOOL, "qmail_service.service_pid", "qmail-smtpsd") == pid


def test_the_isp_gets_the_mail_only_with_the_right_credentials(sublab):
    subject = f"via smarthost {uuid.uuid4().hex}"
    proc = sublab.spool.run(f"/var/qmail/bin/qmail-inject someone@{ISP}",
                            input=f"Subject: {subject}\n\nx\n")
    assert proc.returncode == 0, proc.stderr
    # The wrong password: qmail-remote's attempt is refused and deferred.
    # (qmail-send's deferral: connected, then refused, or dropped while the
    # patch's qmail-remote waits for a second reply to the refused AUTH.)
    wait_until(lambda: any("deferral: Connected_to_" in line
                           for line in sublab.call(SPOOL, "qmail_service.logs", "qmail-send",
                                                   lines=500)),
               180, what="the deferral of the wrongly authenticated delivery")
    assert sublab.isp.delivered(MAILDIR, subject) == []
    # The right one, from pillar: the next attempt is accepted.
    sublab.smarthost_password = sublab.passwords["carol"]
    sublab.master.set_pillar(sublab.pillars())
    preview = sublab.apply(target=SPOOL, test=True)
    ret = sublab.apply(target=SPOOL)
    sublab.outputs += [json.dumps(preview), json.dumps(ret)]
    state = next(v for v in ret[SPOOL].values() if v["__id__"] == AUTHSENDERS_STATE)
    assert state["changes"] == {"credentials": "changed"}
    # A flush while the refused attempt still waits for its reply finds the
    # message in flight and does nothing (the next retry would be minutes
    # away): flush again until the delivery is there.
    def flushed_and_delivered():
        sublab.call(SPOOL, "qmail_service.flush")
        return sublab.isp.delivered(MAILDIR, subject)

    (found,) = wait_until(flushed_and_delivered, 180, what="delivery through the smarthost")
    text = sublab.isp.read_file(found)
    assert "with ESMTPA" in text and f"(carol@{sublab.spool.ip})" in text


def test_credentials_are_in_no_output_and_no_log(sublab):
    shown = sublab.master.salt(SPOOL, "state.show_sls", "qmail")[SPOOL]
    settings = sublab.call(SPOOL, "qmail_settings.show")
    assert settings["smarthost"]["password"] == "**********"
    logs = []
    for service in ("qmail-send", "qmail-smtpd", "qmail-smtpsd"):
        logs += sublab.call(SPOOL, "qmail_service.logs", service, lines=2000)
    minion_log = sublab.spool.run(["cat", "/var/log/salt/minion"]).stdout
    texts = {"state outputs": "\n".join(sublab.outputs), "rendered SLS": json.dumps(shown),
             "qmail_settings.show": json.dumps(settings), "qmail logs": "\n".join(logs),
             "minion log": minion_log}
    for secret in sublab.secrets():
        leaks = [name for name, text in texts.items() if secret in text]
        assert leaks == [], f"a secret shows in {leaks}"
    # ...and the hashes are not in the output either: users are named, not shown.
    for hashed in sublab.hashes.values():
        assert hashed not in texts["state outputs"]


def test_second_apply_changes_nothing(sublab):
    assert changed(sublab.apply()) == {SPOOL: [], ISP: []}
    assert changed(sublab.apply(test=True)) == {SPOOL: [], ISP: []}
