"""qmail:ipv6 through Salt's loader (issue 22): IPv6 relay clients spelt as
tcpserver writes TCPREMOTEIP, what the setting gives qmail.service, and the
refusals. On real hosts: test/e2e/test_ipv6_lab.py."""

import pathlib
import shlex

import pytest
import yaml
from salt.exceptions import SaltInvocationError

REPO = pathlib.Path(__file__).resolve().parents[2]


def _params(name):
    return yaml.safe_load((REPO / "qmail" / "parameters" / name).read_text())


def settings(modules, pillar, os_family="Debian"):
    pillar = dict(pillar, me="ccs.cla.kobe-u.ac.jp")
    return modules.qmail_settings.merge(
        _params("defaults.yaml"), _params(f"os_family/{os_family}.yaml"), pillar)


# Each address as a client bound to it, and TCPREMOTEIP as Debian's
# ucspi-tcp-ipv6 1:0.88-7 tcpserver set it (its ip6_fmt: the longest zero
# run compressed even when it is one group; RFC 5952, Python's
# ipaddress, keeps a lone 0), checked in a network namespace on this
# machine; the lab test checks one of these spellings on real hosts.
SEEN_FROM_TCPSERVER = [
    ("2001:db8:0:1:1:1:1:1", "2001:db8::1:1:1:1:1"),   # Python: 2001:db8:0:1:1:1:1:1
    ("2001:db8:1:1:1:1:1:0", "2001:db8:1:1:1:1:1::"),  # Python: ...:1:0
    ("2001:db8:0:1:0:0:0:5", "2001:db8:0:1::5"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),     # the first of equal runs
    ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),           # the longest run
    ("FD00:0000:0000:0000:0001:0002:0003:0004", "fd00::1:2:3:4"),
    ("2001:DB8:AAAA:bbbb:cccc:dddd:eeee:ffff", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
    ("1:0:0:0:0:0:0:0", "1::"),
    ("0:0:0:0:0:0:0:1", "::1"),
    ("::102:304", "::102:304"),
]


@pytest.mark.parametrize(("entry", "seen"), SEEN_FROM_TCPSERVER)
def test_ipv6_is_spelt_as_tcpserver_writes_it(loaders, entry, seen):
    assert loaders.utils["qmail_ipv6.tcpserver_form"](entry) == seen


@pytest.mark.parametrize(("entry", "seen"), [
    (e, s) for e, s in SEEN_FROM_TCPSERVER if not s.endswith(":")])
def test_ipv6_relay_client_is_the_rule_tcpserver_matches(modules, entry, seen):
    rules = modules.qmail_service.tcp_rules([entry], ipv6=True)
    assert rules == [f'{seen}:allow,RELAYCLIENT=""', ":allow"]


# tcprules reads a rule ending in ":" as a prefix (ucspi-tcp-ipv6's
# tcprulescheck: a rule "fd00::" matches TCPREMOTEIP=fd00::5 and
# fd00::1:2): such an address would let others relay.
@pytest.mark.parametrize("entry", ["fd00::", "1:0:0:0:0:0:0:0", "2001:db8:1:1:1:1:1:0",
                                   "fd00:1:2:3::"])
def test_an_address_spelt_as_a_prefix_is_refused(modules, entry):
    with pytest.raises(SaltInvocationError) as exc:
        modules.qmail_service.tcp_rules(["10.1.2.0/24", entry], ipv6=True)
    assert str(exc.value).startswith(
        f"qmail:relay_clients[1]: {entry!r} arrives as ")
    assert "it would widen relaying" in str(exc.value)


def test_ipv4_and_ipv6_clients_together_in_their_order(modules):
    got = settings(modules, {"ipv6": True,
                             "relay_clients": ["10.1.2.0/24", "2001:db8::25/128",
                                               "2001:DB8:0:0:0:0:0:25", "192.168.5.7"]})
    assert got["service"]["tcp_rules"] == [
        '10.1.2.:allow,RELAYCLIENT=""', '2001:db8::25:allow,RELAYCLIENT=""',
        '192.168.5.7:allow,RELAYCLIENT=""', ":allow"]


@pytest.mark.parametrize(("pillar", "ipv6", "package", "listen"), [
    ({}, False, "", "0.0.0.0"),
    ({"ipv6": True}, True, "ucspi-tcp-ipv6", "0"),
    ({"ipv6": True, "service": {"supervisor": "daemontools"}}, True, "ucspi-tcp-ipv6", "0"),
    # A client runs no qmail-smtpd: nothing to listen with.
    ({"ipv6": True, "role": "client", "spool": "mail.cla.kobe-u.ac.jp"}, False, "", "0.0.0.0"),
])
def test_what_the_setting_gives_the_service(modules, pillar, ipv6, package, listen):
    got = settings(modules, pillar)["service"]
    assert (got["ipv6"], got["ipv6_package"], got["listen"]) == (ipv6, package, listen)


@pytest.mark.parametrize(("pillar", "error"), [
    ({"relay_clients": ["2001:db8::25"]},
     "qmail:relay_clients[0]: '2001:db8::25' is an IPv6 entry, but qmail:ipv6 is off"),
    ({"ipv6": True, "relay_clients": ["10.1.2.0/24", "2001:db8::/64"]},
     "qmail:relay_clients[1]: '2001:db8::/64' is an IPv6 network"),
    ({"ipv6": True, "relay_clients": ["2001:db8::25/127"]},
     "qmail:relay_clients[0]: '2001:db8::25/127' is not an IP address or network"),
    ({"ipv6": True, "relay_clients": ["2001:db8::24/127"]},
     "qmail:relay_clients[0]: '2001:db8::24/127' is an IPv6 network"),
    ({"ipv6": True, "relay_clients": ["::/0"]},
     "qmail:relay_clients[0]: '::/0' is an IPv6 network"),
    ({"ipv6": True, "relay_clients": ["2001:db8::g"]},
     "qmail:relay_clients[0]: '2001:db8::g' is not an IP address or network"),
    ({"ipv6": True, "relay_clients": ["::ffff:10.1.2.3"]},
     "qmail:relay_clients[0]: '::ffff:10.1.2.3' is an IPv4-mapped address"),
    ({"ipv6": True, "relay_clients": ["fe80::1%eth0"]},
     "qmail:relay_clients[0]: 'fe80::1%eth0' has a zone"),
    ({"ipv6": True, "relay_clients": ["::"]},
     "qmail:relay_clients[0]: '::' is the unspecified address"),
    ({"ipv6": True, "service": {"smtpd": "inetd", "supervisor": "bootscript"}},
     "qmail:ipv6: inetd runs qmail-smtpd through tcp-env, which is IPv4 only"),
    ({"ipv6": "yes"}, "qmail:ipv6: expected true/false, got 'yes'"),
    ({"ipv6": True, "lookup": {"service": {"ipv6_package": "ucspi tcp"}}},
     "qmail:lookup:service:ipv6_package: 'ucspi tcp' is not a Debian package name"),
])
def test_bad_ipv6_pillar_names_the_key(modules, pillar, error):
    with pytest.raises(SaltInvocationError) as exc:
        settings(modules, pillar)
    assert str(exc.value).startswith(error)


def test_an_os_without_an_ipv6_tcpserver_package_is_refused(modules):
    with pytest.raises(SaltInvocationError) as exc:
        settings(modules, {"ipv6": True, "service": {"supervisor": "daemontools",
                                                     "smtpd": "tcpserver"}},
                 os_family="FreeBSD")
    assert str(exc.value).startswith("qmail:ipv6: this OS has no IPv6 tcpserver package")


@pytest.mark.parametrize("ipv6", [True, False])
def test_the_run_script_binds_what_the_setting_says(modules, ipv6):
    """tcpserver's host word, right before the port, in the rendered run script."""
    merged = settings(modules, {"ipv6": ipv6})
    script = modules.qmail_tofs.contents(["service/smtpd-run"], "smtpd-run", {
        "home": "/var/qmail", "rules": "/etc/tcp.smtp", "port": 25, "concurrency": 40,
        "qmaild": "qmaild", "ucspi_bin": "/usr/bin",
        "program": ["/var/qmail/supervise/qmail-smtpd/smtpd"], "drop": True, "tls": "none",
        "listen": merged["service"]["listen"]}, merged["tofs"])
    words = shlex.split(script.replace("\\\n", " ").split("exec /usr/bin/tcpserver")[1]
                        .splitlines()[0])
    assert words[-3:-1] == ["0" if ipv6 else "0.0.0.0", "25"]
