"""
Property-based tests (hypothesis) of the shared validators
(``_utils/qmail_validate.py``) and of the control-file writer: any value is
either refused with an error that starts with the key, or accepted in a
form that qmail reads back exactly as meant (one entry per ``\\n``, no
``\\r``, ASCII).
"""

import ipaddress
import os
import re
import string as strings

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

from _utils import qmail_owner as owner
from _utils import qmail_validate as v
from _utils import qmail_validate_tables as tables

KEY = "qmail:test:key[3]"
# Characters that break lines somewhere (qmail, Python, YAML), non-ASCII
# digits and letters, and the shell's specials.
TRICKY = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029\x00\t ２٢²ｃ例é#$`;|&'\"(){}*?<>\\:./-_@"
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
HOSTISH = st.lists(LABEL, min_size=1, max_size=5).map(".".join)
ANY_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=strings.printable + TRICKY, max_size=40),
    st.tuples(HOSTISH, st.sampled_from(["", "."]), st.text(alphabet=TRICKY, max_size=3),
              HOSTISH).map(lambda t: t[1] + t[0] + t[2] + t[3]),
)
ANY_VALUE = st.one_of(ANY_TEXT, st.none(), st.integers(), st.booleans(), st.floats(),
                      st.lists(st.text(max_size=5), max_size=2))
PRINTABLE = re.compile(r"[\x20-\x7e]*")


def refused_or(fun, value, *args):
    """Call a validator: a refusal must name the key first; returns the
    result, or None when refused."""
    try:
        return fun(value, KEY, *args)
    except SaltInvocationError as exc:
        assert str(exc).startswith(KEY + ": "), str(exc)
        return None


@given(ANY_VALUE)
def test_string_accepts_only_one_printable_ascii_line(value):
    if refused_or(v.string, value) is not None:
        assert isinstance(value, str) and PRINTABLE.fullmatch(value) and value.strip()


@given(ANY_VALUE)
def test_greeting_fits_one_smtp_reply_line(value):
    if refused_or(v.greeting, value) is not None:
        assert len(("220 " + value + "\r\n").encode("ascii")) <= 512


@given(st.one_of(ANY_VALUE, HOSTISH))
def test_host_is_ascii_labels_without_trailing_dot(value):
    if refused_or(v.host, value) is not None:
        assert re.fullmatch(r"[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*", value)
        assert not value.endswith(".") and len(value) <= 253


@given(st.one_of(ANY_VALUE, HOSTISH))
def test_fqdn_has_two_labels_and_is_no_address(value):
    if refused_or(v.fqdn, value) is not None:
        assert "." in value and not value.split(".")[-1].isdigit()


@given(st.one_of(ANY_VALUE, HOSTISH, HOSTISH.map(lambda h: "." + h)))
def test_wildcard_never_covers_a_public_suffix(value):
    if refused_or(v.wildcard, value) is not None and value.startswith("."):
        domain = value[1:].lower()
        suffix = tables.public_suffix(domain, tables.load_psl(tables.psl_path()))
        assert domain != suffix and domain.endswith("." + suffix)


@given(st.one_of(ANY_VALUE, st.integers(min_value=-10, max_value=2**40).map(str),
                 st.integers(min_value=-10, max_value=2**40)))
def test_integer_is_ascii_digits_within_a_c_int(value):
    got = refused_or(v.integer, value, 0, v.MAX_INT)
    if got is not None:
        assert isinstance(got, int) and 0 <= got <= 2**31 - 1
        assert got == (value if isinstance(value, int) else int(value.strip(" \t")))
        assert isinstance(value, int) or re.fullmatch(r"[ \t]*[0-9]+[ \t]*", value)


@given(st.one_of(ANY_VALUE, st.lists(LABEL, max_size=4).map(lambda p: "/" + "/".join(p)),
                 st.sampled_from(["//", "/usr/../etc", "/var/qmail/.", "/./usr//bin"])))
def test_path_is_normal_absolute_and_in_the_safe_set(value):
    got = refused_or(v.path, value)
    if got is not None:
        assert re.fullmatch(r"/|(/[A-Za-z0-9._+@,=-]+)+", got), got
        assert got == os.path.normpath(got) and not got.startswith("//")
        assert "/../" not in got + "/" and "/./" not in got + "/"


@given(st.one_of(ANY_VALUE, st.sampled_from(sorted(tables.SYSTEM_DIRS)),
                 st.tuples(st.sampled_from(sorted(tables.SYSTEM_DIRS)), LABEL).map("/".join),
                 st.tuples(st.sampled_from(["/", "//", "/./"]), st.sampled_from(
                     ["usr", "etc", "var", "var/qmail", "srv/q"])).map("".join)))
def test_own_dir_never_is_holds_or_lies_in_a_system_folder(value):
    got = refused_or(v.own_dir, value)
    if got is not None:
        for real in {got, os.path.realpath(got)}:
            assert real not in tables.SYSTEM_DIRS
            assert not any(s.startswith(real + "/") for s in tables.SYSTEM_DIRS)
            assert not any(real.startswith(s + "/") for s in tables.SYSTEM_INSIDES)


NETWORK = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: f"{(t[0] >> (32 - t[1]) << (32 - t[1])) if t[1] else 0:d}/{t[1]}").map(
    lambda s: "{}.{}.{}.{}/{}".format(*int(s.split("/")[0]).to_bytes(4, "big"), s.split("/")[1]))


@given(st.lists(st.one_of(NETWORK, ANY_TEXT), max_size=300))
def test_relay_networks_together_cover_at_most_one_slash_8(value):
    try:
        nets = v.relay_networks(value, KEY)
    except SaltInvocationError as exc:
        assert str(exc).startswith(KEY)
        return
    assert sum(n.num_addresses for n in ipaddress.collapse_addresses(nets)) <= 2**24


# --------------------------------------------------------------------------
# The control-file writer, through Salt's loader
# --------------------------------------------------------------------------
ENTRY = st.one_of(HOSTISH, HOSTISH.map(lambda h: "." + h), ANY_TEXT,
                  st.sampled_from(["# retired\u2028.com", "a.example.com\r", " b.example.com ",
                                   "# a comment", "", ".com", ".ac.jp"]))


@pytest.fixture(scope="module")
def control(loaders):
    return loaders.modules.qmail_control


def expected_lines(entries):
    seen, lines = set(), []
    for entry in entries:
        entry = entry.strip(" \t")
        if entry.startswith("#"):
            lines.append(entry)
        elif entry not in seen:
            seen.add(entry)
            lines.append(entry)
    return lines


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["rcpthosts", "locals", "morercpthosts", "smtproutes",
                             "badmailfrom"]),
       entries=st.lists(ENTRY, max_size=6))
def test_writer_writes_what_qmail_reads_back_or_refuses(control, tmp_path_factory, name,
                                                        entries):
    home = tmp_path_factory.mktemp("home")
    path = home / "control" / name
    try:
        control.write(name, entries, home=str(home))
    except SaltInvocationError as exc:
        assert str(exc).startswith(f"{name}[") or str(exc).startswith(f"{name}:"), str(exc)
        assert not path.exists()
        return
    data = path.read_bytes()
    assert data.isascii() and b"\r" not in data
    lines = data.split(b"\n")
    assert lines[-1] == b""  # a final newline, then nothing
    assert [line.decode() for line in lines[:-1]] == expected_lines(entries)
    # qmail's own view: entries without comments, one per \n.
    shown = control.showctl(home=str(home))[name]["value"]
    assert shown == [e for e in expected_lines(entries) if not e.startswith("#")]
    assert control.check_changes(name, entries, home=str(home)) == {}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=st.one_of(st.binary(max_size=40), st.sampled_from(
    [b"ccs.example.com\r\n", b"ccs.example.com", b"\xa4\xb3\xa4\xf3\n", b"ccs.example.com\n\n"])),
       value=st.tuples(HOSTISH, st.from_regex(r"[a-z]{2,6}", fullmatch=True)).map(".".join))
def test_any_bytes_on_disk_that_differ_are_a_change(control, tmp_path_factory, old, value):
    home = tmp_path_factory.mktemp("home")
    (home / "control").mkdir()
    (home / "control" / "me").write_bytes(old)
    changes = control.check_changes("me", value, home=str(home))
    wanted = (value + "\n").encode()
    assert bool(changes.get("diff")) == (old != wanted)
    control.write("me", value, home=str(home))
    assert (home / "control" / "me").read_bytes() == wanted


# --------------------------------------------------------------------------
# Issue 19: whatever a path key holds, an accepted place lies under the
# allowed roots of its kind (or a scratch root), never in the qmail home
# nor on a file of the system.
# --------------------------------------------------------------------------
_OWNS = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "..", "qmail",
                                         "parameters", "defaults.yaml"),
                            encoding="utf-8"))["owns"]
_PARTS = st.sampled_from(["etc", "var", "lib", "qmail", "qmail-tls", "ssh", "ssl", "passwd",
                          "shadow", "..", ".", "tcp.smtp", "rc.local", "cache", "log",
                          "systemd", "system", "www", "mysql", "control", "sendmail", "db",
                          "x", "service", "inetd.conf", "rc.conf"])
_PATHS = st.one_of(st.lists(_PARTS, min_size=0, max_size=6).map(lambda p: "/" + "/".join(p)),
                   ANY_TEXT)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_PATHS, st.sampled_from(sorted(_OWNS["places"])))
def test_an_accepted_place_lies_under_its_roots(value, kind):
    normal = refused_or(v.path, value)
    if normal is None:
        return
    try:
        owner.place(normal, KEY, kind, _OWNS, "/var/qmail", [])
    except SaltInvocationError as exc:
        assert str(exc).startswith(KEY + ": "), str(exc)
        return
    real = os.path.realpath(normal)
    for candidate in {normal, real}:
        roots = _OWNS["places"][kind]["roots"]
        assert any(candidate == r or candidate.startswith(r.rstrip("/") + "/") for r in roots)
        assert not v.inside(candidate, "/var/qmail")
        assert not any(v.inside(candidate, bad) for bad in _OWNS["never"])


@settings(max_examples=200)
@given(st.one_of(ANY_TEXT, st.sampled_from(["root", "daemon", "docker", "shadow", "sudo",
                                            "systemd-x", "_apt", "qmaild", "wheel"])))
def test_an_accepted_account_is_no_reserved_name(name):
    if refused_or(v.account, name) is None:
        return
    lookup = {"home": "/var/qmail", "users": {"qmaild": name}, "groups": {"nofiles": name}}
    try:
        owner.accounts(lookup, _OWNS, {})
    except SaltInvocationError as exc:
        assert str(exc).startswith("qmail:lookup:"), str(exc)
        return
    assert not any(__import__("fnmatch").fnmatchcase(name, p)
                   for p in _OWNS["reserved_accounts"])
    try:
        assert __import__("pwd").getpwnam(name).pw_uid != 0
    except KeyError:
        pass
