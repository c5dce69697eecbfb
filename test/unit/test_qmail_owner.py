"""_utils/qmail_owner.py (issue 19): values of the right form that point at
what is not the formula's are refused, naming the key; the formula's own
defaults and its own (ledger-listed or qmail-shaped) things pass."""

import collections
import pathlib

import pytest
import yaml
from salt.exceptions import SaltInvocationError

from _utils import qmail_owner as owner

PARAMETERS = pathlib.Path(__file__).resolve().parents[2] / "qmail" / "parameters"
OWNS = yaml.safe_load((PARAMETERS / "defaults.yaml").read_text())["owns"]
HOME = "/var/qmail"
Pw = collections.namedtuple("Pw", "pw_name pw_uid pw_gid pw_dir pw_shell")
Gr = collections.namedtuple("Gr", "gr_name gr_gid gr_mem")


def refused(fun, *args, key):
    with pytest.raises(SaltInvocationError) as caught:
        fun(*args)
    assert str(caught.value).startswith(key + ": "), str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize(("kind", "path"), [
    ("state", "/var/lib/qmail-formula/sendmail.json"), ("state", "/var/db/qmail/l.json"),
    ("cache", "/var/cache/qmail-build"), ("tls", "/etc/qmail-tls"),
    ("tls", "/usr/local/etc/qmail/tls"), ("log", "/var/log/qmail"),
    ("units", "/etc/systemd/system"), ("svscan", "/etc/service"), ("svscan", "/service"),
    ("svscan", "/var/service"), ("tcp_rules", "/etc/tcp.smtp"),
    ("tcp_rules", "/usr/local/etc/tcp.smtp"), ("inetd_conf", "/etc/inetd.conf"),
    ("boot_script", "/etc/rc.local"), ("boot_script", "/etc/rc.d/rc.local"),
    ("rc_conf", "/etc/rc.conf"), ("sysconfig", "/etc/sysconfig/sendmail"),
    ("irix_config", "/etc/config/sendmail"), ("mailer_conf", "/etc/mail/mailer.conf"),
])
def test_the_formulas_places_pass(kind, path):
    owner.place(path, "k", kind, OWNS, HOME, [])


@pytest.mark.parametrize(("kind", "path", "says"), [
    ("tls", "/etc/ssh", "/etc/ssh"), ("tls", "/etc/ssl/private", "/etc/ssl"),
    ("tls", "/var/qmail/control", "qmail home"), ("tls", "/etc/mysql", "qmail*"),
    ("cache", "/var/lib/mysql", "/var/lib/mysql"), ("cache", "/var/www/html", "/var/www"),
    ("state", "/var/lib/dbus/x.json", "qmail*"), ("boot_script", "/etc/shadow", "/etc/shadow"),
    ("tcp_rules", "/etc/passwd", "/etc/passwd"), ("units", "/usr/lib/systemd/system", "one of"),
    ("inetd_conf", "/var/qmail/control/rcpthosts", "qmail home"),
    ("rc_conf", "/etc/rc.conf.d/../passwd", "passwd"),
])
def test_other_places_are_refused(kind, path, says):
    import os  # noqa: PLC0415 - normalised as qmail_validate.path does
    assert says in refused(owner.place, os.path.normpath(path), "qmail:k", kind, OWNS, HOME,
                           [], key="qmail:k")


def test_a_symlink_to_a_system_file_is_refused(tmp_path):
    link = tmp_path / "rc.local"
    link.symlink_to("/etc/shadow")
    text = refused(owner.place, str(link), "qmail:k", "boot_script", OWNS, HOME,
                   [str(tmp_path)], key="qmail:k")
    assert "through a symlink to /etc/shadow" in text


def test_scratch_roots_allow_any_name_but_never_the_home_or_system_files(tmp_path):
    owner.place(str(tmp_path / "etc" / "systemd"), "k", "units", OWNS, HOME, [str(tmp_path)])
    refused(owner.place, str(tmp_path / "q" / "control" / "me"), "qmail:k", "tcp_rules", OWNS,
            str(tmp_path / "q"), [str(tmp_path)], key="qmail:k")
    with pytest.raises(SaltInvocationError, match="qmail_scratch_roots"):
        owner.scratch_roots(["/etc"])
    assert owner.scratch_roots(None) == []


def _lookup(**over):
    lookup = {"home": HOME, "users": {"qmaild": "qmaild", "alias": "alias"},
              "groups": {"qmail": "qmail", "nofiles": "nofiles"}}
    lookup.update(over)
    return lookup


@pytest.fixture
def host(monkeypatch):
    """A passwd and group database of our own."""
    users = {}
    groups = {}

    def getpwnam(name):
        return users[name]

    def getgrnam(name):
        return groups[name]

    monkeypatch.setattr(owner.pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(owner.pwd, "getpwall", lambda: list(users.values()))
    monkeypatch.setattr(owner.grp, "getgrnam", getgrnam)
    return users, groups


@pytest.mark.parametrize(("kind", "name"), [
    ("users", "root"), ("users", "daemon"), ("users", "systemd-network"), ("users", "_apt"),
    ("groups", "docker"), ("groups", "shadow"), ("groups", "wheel"), ("groups", "sudo"),
])
def test_reserved_names_are_refused(host, kind, name):
    key = "qmaild" if kind == "users" else "nofiles"
    lookup = _lookup(**{kind: {**_lookup()[kind], key: name}})
    assert "reserves" in refused(owner.accounts, lookup, OWNS, {},
                                 key=f"qmail:lookup:{kind}:{key}")


def test_existing_accounts_must_have_qmails_shape(host):
    users, groups = host
    users["app"] = Pw("app", 1001, 1001, "/home/app", "/bin/bash")
    users["toor2"] = Pw("toor2", 0, 0, "/var/qmail", "/usr/sbin/nologin")
    users["qmaild"] = Pw("qmaild", 998, 997, "/var/qmail", "/usr/sbin/nologin")
    owner.accounts(_lookup(), OWNS, {})  # qmail's shape: accepted
    refused(owner.accounts, _lookup(users={"qmaild": "app"}), OWNS, {},
            key="qmail:lookup:users:qmaild")
    assert "uid 0" in refused(owner.accounts, _lookup(users={"qmaild": "toor2"}), OWNS, {},
                              key="qmail:lookup:users:qmaild")
    # What the ledger lists was the formula's, whatever its shape now.
    owner.accounts(_lookup(users={"qmaild": "app"}), OWNS, {"users": ["app"]})


def test_existing_groups_must_be_qmails(host):
    users, groups = host
    users["qmaild"] = Pw("qmaild", 998, 997, "/var/qmail", "/usr/sbin/nologin")
    users["web"] = Pw("web", 1002, 1500, "/srv/web", "/bin/sh")
    groups["nofiles"] = Gr("nofiles", 997, [])
    groups["webgroup"] = Gr("webgroup", 1500, [])
    groups["empty"] = Gr("empty", 1600, [])
    groups["members"] = Gr("members", 997, ["alice"])
    owner.accounts(_lookup(), OWNS, {})
    refused(owner.accounts, _lookup(groups={"qmail": "webgroup", "nofiles": "nofiles"}), OWNS,
            {}, key="qmail:lookup:groups:qmail")
    refused(owner.accounts, _lookup(groups={"qmail": "empty", "nofiles": "nofiles"}), OWNS,
            {}, key="qmail:lookup:groups:qmail")
    refused(owner.accounts, _lookup(groups={"qmail": "members", "nofiles": "nofiles"}), OWNS,
            {}, key="qmail:lookup:groups:qmail")
    owner.accounts(_lookup(groups={"qmail": "empty", "nofiles": "nofiles"}), OWNS,
                   {"groups": ["empty"]})


@pytest.mark.parametrize("shell", ["/usr/sbin/nologin", "/sbin/nologin", "/bin/false",
                                   "/usr/bin/false", "/dev/null"])
def test_nologin_shells_pass(shell):
    owner.nologin_shell(shell, "k", OWNS)


@pytest.mark.parametrize("shell", ["/bin/bash", "/bin/sh", "/usr/bin/python3", "/bin/sync"])
def test_login_shells_are_refused(shell):
    refused(owner.nologin_shell, shell, "qmail:lookup:nologin_shell", OWNS,
            key="qmail:lookup:nologin_shell")


def test_sendmail_places(tmp_path, monkeypatch):
    monkeypatch.setattr(owner, "package_of", lambda path: packages.get(path))
    packages = {}
    owner.sendmail_place(str(tmp_path / "missing"), "k", OWNS, HOME)  # nothing to neutralise
    binary = tmp_path / "sendmail.sendmail"
    binary.write_text("x")
    link = tmp_path / "sendmail"
    link.symlink_to(binary.name)
    owner.sendmail_place(str(link), "k", OWNS, HOME)
    packages[str(binary)] = "sendmail-bin"
    owner.sendmail_place(str(link), "k", OWNS, HOME)
    packages[str(binary)] = "openssh-server"
    assert "openssh-server" in refused(owner.sendmail_place, str(link), "qmail:k", OWNS, HOME,
                                       key="qmail:k")
    sshd = tmp_path / "sshd"
    sshd.write_text("x")
    refused(owner.sendmail_place, str(sshd), "qmail:k", OWNS, HOME, key="qmail:k")
    # A link to qmail's own front end (a converged host): the formula's.
    front = tmp_path / "q" / "bin" / "sendmail"
    front.parent.mkdir(parents=True)
    front.write_text("x")
    other = tmp_path / "usr-lib-sendmail"
    other.symlink_to(front)
    owner.sendmail_place(str(other), "k", OWNS, str(tmp_path / "q"))


@pytest.mark.parametrize(("field", "value", "key"), [
    ("sendmail_services", ["ssh"], "qmail:lookup:sendmail_services[0]"),
    ("sendmail_services", ["sendmail", "cron"], "qmail:lookup:sendmail_services[1]"),
    ("sendmail_alternatives", [{"name": "editor", "slaves": []}],
     "qmail:lookup:sendmail_alternatives[0]:name"),
    ("sendmail_alternatives", [{"name": "mta", "slaves": [{"name": "vi"}]}],
     "qmail:lookup:sendmail_alternatives[0]:slaves[0]:name"),
])
def test_sendmail_names(field, value, key):
    lookup = {"sendmail_services": ["sendmail", "sm-client"], "sendmail_alternatives": [
        {"name": "mta", "slaves": [{"name": "mta-sendmail"}, {"name": "mta-mailq"}]}]}
    owner.sendmail_names(lookup, OWNS)
    refused(owner.sendmail_names, {**lookup, field: value}, OWNS, key=key)


def test_mta_package(monkeypatch):
    monkeypatch.setattr(owner, "package_known", lambda name: name == "openssh-server")
    owner.mta_package("qmail-formula-mta", "qmail-formula-mta", "k", {})
    owner.mta_package("my-dummy-mta", "qmail-formula-mta", "k", {})
    owner.mta_package("openssh-server", "qmail-formula-mta", "k", {"packages": ["openssh-server"]})
    assert "real package" in refused(owner.mta_package, "openssh-server", "qmail-formula-mta",
                                     "qmail:k", {}, key="qmail:k")


def test_dpkg_knows_this_hosts_shell():
    """The real queries, on this Debian host."""
    if not owner.shutil.which("dpkg-query"):
        pytest.skip("no dpkg here")
    assert owner.package_of("/usr/bin/dash") == "dash"
    assert owner.package_known("dash")
    assert not owner.package_known("qmail-formula-no-such-package")
