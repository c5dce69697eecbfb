"""
Masterless, as the README's commands run it: the formula copied to
/srv/formulas/qmail-formula on a legacy host (``sendmail`` image) whose
minion has no master, pillar in /srv/pillar, then
``salt-call --local ... saltutil.sync_all`` and ``... state.apply``.

Without a qmail source the control files of a client are applied (and a
second run changes nothing); with one, the whole ``qmail`` on a spool: the
sendmail binary put aside, qmail-send running, a message delivered.
"""

import io
import json
import tarfile
import uuid

import pytest
import yaml

from lab import config
from lab.wait import wait_until

pytestmark = pytest.mark.lab

FORMULA = "/srv/formulas/qmail-formula"
PILLAR = "/srv/pillar"
SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"


def formula_tar() -> bytes:
    """The formula's own files (what a user puts on file_roots), as a tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("qmail", "_modules", "_states", "_utils"):
            tar.add(config.REPO_ROOT / name, arcname=name,
                    filter=lambda info: None if "__pycache__" in info.name else info)
    return buffer.getvalue()


class Masterless:
    def __init__(self, host):
        self.host = host
        host.put_file("/tmp/formula.tar", formula_tar())
        host.run(f"mkdir -p {FORMULA} && tar -xf /tmp/formula.tar -C {FORMULA}", check=True)

    def set_pillar(self, qmail):
        self.host.put_file(f"{PILLAR}/top.sls", "base:\n  '*':\n    - qmail\n")
        self.host.put_file(f"{PILLAR}/qmail.sls", yaml.safe_dump({"qmail": qmail}))

    def salt_call(self, *args):
        """The README's command line, with --pillar-root; the JSON ``local`` return."""
        argv = ["salt-call", "--local", f"--file-root={FORMULA}", f"--pillar-root={PILLAR}",
                "--out=json", *args]
        proc = self.host.run(argv, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return json.loads(proc.stdout)["local"]

    def apply(self, sls, test=False):
        ret = self.salt_call("state.apply", sls, *(["test=True"] if test else []))
        assert isinstance(ret, dict), ret
        failed = {k: v["comment"] for k, v in ret.items() if v["result"] is False}
        assert not failed, failed
        return ret


def changed(ret):
    return sorted(v["__id__"] for v in ret.values() if v["changes"])


@pytest.fixture
def legacy_host(lab):
    """A host of the sendmail image whose minion never starts (no master)."""
    fqdn_hosts = []

    def start(fqdn):
        (host,) = lab.create_hosts([fqdn], "sendmail")
        fqdn_hosts.append(host)
        return Masterless(host)
    yield start
    lab.remove_hosts(fqdn_hosts)


def test_readme_commands_set_up_a_client_without_a_master(legacy_host):
    node = legacy_host(CLIENT)
    node.set_pillar({"role": "client", "spool": SPOOL})
    synced = node.salt_call("saltutil.sync_all")
    assert "modules.qmail_control" in synced["modules"]
    assert "states.qmail_control" in synced["states"]

    predicted = node.apply("qmail.control", test=True)
    assert not node.host.exists("/var/qmail/control/me")
    assert any(v["result"] is None for v in predicted.values())

    node.apply("qmail.control")
    control = {name: node.host.read_file(f"/var/qmail/control/{name}")
               for name in ("me", "defaulthost", "locals", "smtproutes")}
    assert control == {"me": f"{CLIENT}\n", "defaulthost": f"{SPOOL}\n",
                       "locals": "localhost.cla.kobe-u.ac.jp\n", "smtproutes": f":{SPOOL}\n"}
    assert changed(node.apply("qmail.control")) == []


def test_whole_formula_on_a_spool_without_a_master(legacy_host, qmail_source):
    node = legacy_host(SPOOL)
    tarball = f"{FORMULA}-sources/{qmail_source.path.name}"
    node.host.put_file(tarball, qmail_source.read_bytes())
    node.set_pillar({"role": "spool", "source": {"url": tarball, "hash": qmail_source.salt_hash}})
    node.salt_call("saltutil.sync_all")
    node.apply("qmail")

    # Debian's real sendmail binary, chmod 0 and put aside (seed §2).
    bak = "/usr/libexec/sendmail/sendmail.bak"
    assert node.host.run(["stat", "-c", "%a", bak]).stdout.strip() == "0"
    assert node.host.run(["readlink", "-f", "/usr/sbin/sendmail"]).stdout.strip() == \
        "/var/qmail/bin/sendmail"
    assert node.host.service_active("qmail-send")
    maildir = node.host.add_mail_user("someone")
    subject = f"masterless {uuid.uuid4().hex}"
    proc = node.host.run("/usr/sbin/sendmail someone",
                         input=f"Subject: {subject}\n\nhi\n")
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: node.host.delivered(maildir, subject), 60, what="local delivery")
    assert changed(node.apply("qmail")) == []
