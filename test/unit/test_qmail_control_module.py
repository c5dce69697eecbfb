"""The qmail_control execution module, loaded by Salt's loader."""

import os

import pytest
from salt.exceptions import SaltInvocationError

FQDN = "hostname.cla.kobe-u.ac.jp"
SPOOL = "ccs.cla.kobe-u.ac.jp"

# One good and one bad value for every control file of qmail-control(5).
SYNTAX = {
    "badmailfrom": (["spam@example.com", "@junk.example.org"], ["no-at-sign"]),
    "bouncefrom": ("MAILER-DAEMON", "two words"),
    "bouncehost": ("bounce.example.com", "bad_host!"),
    "concurrencylocal": (10, 0),
    "concurrencyremote": (255, 256),
    "databytes": (0, -1),
    "defaultdomain": ("cla.kobe-u.ac.jp", "cla..kobe"),
    "defaulthost": (SPOOL, "-leading.hyphen"),
    "doublebouncehost": ("example.com", "a b"),
    "doublebounceto": ("postmaster", "post@master"),
    "envnoathost": ("example.com", "ex*ample.com"),
    "helohost": ("mx.example.com", ".example.com"),
    "idhost": ("example.com", "x" * 64 + ".com"),
    "localiphost": ("example.com", "exa mple"),
    "locals": (["localhost.cla.kobe-u.ac.jp", FQDN], [".wildcard.not.allowed"]),
    "me": (FQDN, ""),
    "morercpthosts": (["example.net", ".example.net"], ["# no comments here"]),
    "percenthack": (["example.com"], ["user@example.com"]),
    "plusdomain": ("ac.jp", "ac_jp"),
    "qmqpservers": (["10.0.0.1"], ["10.0.0.256"]),
    "queuelifetime": ("604800", "1w"),
    "rcpthosts": (["cla.kobe-u.ac.jp", ".cla.kobe-u.ac.jp"], ["*.cla.kobe-u.ac.jp"]),
    "smtpgreeting": ("ccs.cla.kobe-u.ac.jp ESMTP", "   "),
    "smtproutes": ([":ccs.cla.kobe-u.ac.jp", ".example.com:[10.0.0.1]:2525", "x.org:"],
                   ["example.com"]),
    "timeoutconnect": (60, "sixty"),
    "timeoutremote": (1200, True),
    "timeoutsmtpd": (1200, 1.5),
    "virtualdomains": (["example.com:alias-example", "joe@example.org:joe", ".dom.net:d"],
                       ["example.com"]),
}


def test_every_control_file_is_known(modules):
    assert sorted(SYNTAX) == modules.qmail_control.files()
    assert len(SYNTAX) == 28


@pytest.mark.parametrize("name", sorted(SYNTAX))
def test_good_value_is_accepted(modules, name):
    text = modules.qmail_control.normalize(name, SYNTAX[name][0])
    assert text.endswith("\n") and not text.endswith("\n\n")


@pytest.mark.parametrize("name", sorted(SYNTAX))
def test_bad_value_is_refused_with_the_key(modules, name):
    with pytest.raises(SaltInvocationError, match=f"^qmail:control:{name}"):
        modules.qmail_control.normalize(name, SYNTAX[name][1], key=f"qmail:control:{name}")


@pytest.mark.parametrize("value", ["a.com\nb.com", "a.com\rb.com", "a.com\0", "a\tb.com"])
def test_line_breaks_and_control_chars_are_refused(modules, value):
    with pytest.raises(SaltInvocationError, match="rcpthosts"):
        modules.qmail_control.normalize("rcpthosts", [value])
    with pytest.raises(SaltInvocationError, match="me"):
        modules.qmail_control.normalize("me", value)


def test_list_files_are_normalised(modules):
    text = modules.qmail_control.normalize(
        "rcpthosts", ["  b.example.com ", "a.example.com", "b.example.com", "# kept"]
    )
    assert text == "b.example.com\na.example.com\n# kept\n"


def test_one_string_is_one_entry(modules):
    assert modules.qmail_control.normalize("locals", "example.com") == "example.com\n"


def test_numbers_take_strings_and_ints(modules):
    assert modules.qmail_control.normalize("concurrencyremote", "40") == "40\n"
    assert modules.qmail_control.normalize("concurrencyremote", 40) == "40\n"


@pytest.mark.parametrize("name", ["../me", "control/me", "nosuchfile", "", "ME"])
def test_unknown_file_names_are_refused(modules, home, name):
    with pytest.raises(SaltInvocationError, match="is not a qmail control file"):
        modules.qmail_control.write(name, "example.com", home=str(home))
    assert not home.exists()


def test_write_is_atomic_mode_and_owner(modules, home):
    changes = modules.qmail_control.write("rcpthosts", ["a.example.com"], home=str(home))
    path = home / "control" / "rcpthosts"
    assert changes["diff"].startswith("--- /dev/null")
    assert "+a.example.com" in changes["diff"]
    st = path.stat()
    assert (st.st_mode & 0o7777, st.st_uid) == (0o644, 0)
    inode = st.st_ino
    modules.qmail_control.write("rcpthosts", ["b.example.com"], home=str(home))
    # A rename puts a new inode in place: readers never see a half-written file.
    assert path.stat().st_ino != inode
    assert path.read_text() == "b.example.com\n"
    assert os.listdir(home / "control") == ["rcpthosts"]


def test_write_twice_changes_nothing(modules, home):
    modules.qmail_control.write("me", FQDN, home=str(home))
    assert modules.qmail_control.write("me", FQDN, home=str(home)) == {}


def test_wrong_mode_is_a_change(modules, home):
    modules.qmail_control.write("me", FQDN, home=str(home))
    (home / "control" / "me").chmod(0o600)
    changes = modules.qmail_control.check_changes("me", FQDN, home=str(home))
    assert changes == {"mode": {"old": "0600", "new": "0644"}}
    modules.qmail_control.write("me", FQDN, home=str(home))
    assert (home / "control" / "me").stat().st_mode & 0o777 == 0o644


def test_check_changes_touches_nothing(modules, home):
    changes = modules.qmail_control.check_changes("locals", [FQDN], home=str(home))
    assert changes["reload"] == "hup"
    assert not home.exists()


def test_large_diffs_are_summarised(modules, home):
    hosts = [f"h{i}.example.com" for i in range(2000)]
    changes = modules.qmail_control.check_changes("rcpthosts", hosts, home=str(home))
    assert changes["diff"] == "2000 lines added, 0 removed (diff too long to show)"


def test_remove(modules, home):
    modules.qmail_control.write("smtproutes", [":" + SPOOL], home=str(home))
    assert modules.qmail_control.remove("smtproutes", home=str(home))["old"] == f":{SPOOL}\n"
    assert modules.qmail_control.remove("smtproutes", home=str(home)) == {}
    assert modules.qmail_control.list(home=str(home)) == []


@pytest.mark.parametrize(("name", "action"), [
    ("locals", "hup"), ("virtualdomains", "hup"), ("concurrencyremote", "restart"),
    ("me", "restart"), ("morercpthosts", "newmrh"), ("rcpthosts", None),
    ("smtproutes", None), ("defaulthost", None),
])
def test_reload_action(modules, name, action):
    assert modules.qmail_control.reload_action(name) == action


def test_showctl_defaults_and_empty_files(modules, home):
    modules.qmail_control.write("me", FQDN, home=str(home))
    shown = modules.qmail_control.showctl(home=str(home))
    assert shown["locals"] == {"value": [FQDN], "default": True}
    assert shown["defaulthost"] == {"value": FQDN, "default": True}
    assert shown["concurrencyremote"] == {"value": 20, "default": True}
    assert shown["rcpthosts"]["open_relay"] is True
    # An empty locals is not an absent one: nothing is local.
    modules.qmail_control.write("locals", [], home=str(home))
    modules.qmail_control.write("rcpthosts", [], home=str(home))
    shown = modules.qmail_control.showctl(home=str(home))
    assert shown["locals"] == {"value": [], "default": False}
    assert shown["rcpthosts"]["open_relay"] is False


def test_derive_spool(modules):
    files = modules.qmail_control.derive("spool", FQDN)
    assert files == {
        "me": FQDN,
        "defaultdomain": "cla.kobe-u.ac.jp",
        "plusdomain": "ac.jp",
        "locals": ["localhost.cla.kobe-u.ac.jp", FQDN],
        "rcpthosts": ["localhost.cla.kobe-u.ac.jp", FQDN],
    }


def test_derive_client(modules):
    files = modules.qmail_control.derive("client", FQDN, SPOOL)
    assert files["defaulthost"] == SPOOL
    assert files["locals"] == ["localhost.cla.kobe-u.ac.jp"]
    assert files["smtproutes"] == [f":{SPOOL}"]
    assert files["rcpthosts"] == ["localhost.cla.kobe-u.ac.jp", FQDN]


def test_derive_overrides_and_removals(modules):
    files = modules.qmail_control.derive(
        "client", FQDN, SPOOL, {"smtproutes": None, "concurrencyremote": 40}
    )
    assert files["smtproutes"] is None
    assert files["concurrencyremote"] == "40"


def test_derive_two_label_name(modules):
    files = modules.qmail_control.derive("spool", "example.com")
    assert "defaultdomain" not in files
    assert files["plusdomain"] == "example.com"
    assert files["locals"] == ["example.com"]


@pytest.mark.parametrize(("args", "key"), [
    (("relay", FQDN), "qmail:role"),
    (("client", FQDN), "qmail:spool"),
    (("client", FQDN, FQDN), "qmail:spool"),
    (("spool", FQDN, None, {"rcpthosts": None}), "qmail:control:rcpthosts"),
    (("spool", FQDN, None, {"../etc/passwd": "x"}), "qmail:control:../etc/passwd"),
])
def test_derive_refuses(modules, args, key):
    with pytest.raises(SaltInvocationError, match=f"^{key}:"):
        modules.qmail_control.derive(*args)
