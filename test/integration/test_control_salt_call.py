"""
``state.apply qmail.control`` through ``salt-call --local`` on this machine,
the qmail home in a temporary folder: the seed's files byte for byte,
idempotency, test mode, and bad pillars that must leave the tree unchanged.
"""

import hashlib

import pytest
from render_many import snapshot

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"

# The seed's §4 listing (what a spool named CLIENT would get) ...
SEED_SECTION_4 = {
    "defaultdomain": "cla.kobe-u.ac.jp\n",
    "locals": "localhost.cla.kobe-u.ac.jp\nhostname.cla.kobe-u.ac.jp\n",
    "me": "hostname.cla.kobe-u.ac.jp\n",
    "plusdomain": "ac.jp\n",
    "rcpthosts": "localhost.cla.kobe-u.ac.jp\nhostname.cla.kobe-u.ac.jp\n",
}
# ... and §5: the client hands everything to the spool.
SEED_SECTION_5 = {
    **SEED_SECTION_4,
    "defaulthost": "ccs.cla.kobe-u.ac.jp\n",
    "locals": "localhost.cla.kobe-u.ac.jp\n",
    "smtproutes": ":ccs.cla.kobe-u.ac.jp\n",
}
SPOOL_FILES = {
    "defaultdomain": "cla.kobe-u.ac.jp\n",
    "locals": "localhost.cla.kobe-u.ac.jp\nccs.cla.kobe-u.ac.jp\n",
    "me": "ccs.cla.kobe-u.ac.jp\n",
    "plusdomain": "ac.jp\n",
    "rcpthosts": "localhost.cla.kobe-u.ac.jp\nccs.cla.kobe-u.ac.jp\n",
}


def pillar(home, **qmail):
    return {"qmail": {"lookup": {"home": str(home)}, **qmail}}


def control_files(home):
    """What a sysadmin sees: name -> (content, mode, owner)."""
    directory = home / "control"
    if not directory.exists():
        return {}
    return {
        p.name: (p.read_text(), oct(p.stat().st_mode & 0o7777), p.stat().st_uid)
        for p in sorted(directory.iterdir())
    }


def tree(home):
    """Every file under the home with its hash and mode, to prove nothing moved."""
    if not home.exists():
        return {}
    return {
        str(p.relative_to(home)): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
            p.stat().st_mode, p.stat().st_ino,
        )
        for p in sorted(home.rglob("*"))
    }


def expect(files):
    return {name: (text, "0o644", 0) for name, text in files.items()}


@pytest.mark.parametrize(("qmail", "files"), [
    ({"role": "spool", "me": CLIENT}, SEED_SECTION_4),
    ({"role": "client", "me": CLIENT, "spool": SPOOL}, SEED_SECTION_5),
    ({"role": "spool", "me": SPOOL}, SPOOL_FILES),
], ids=["seed-section-4", "seed-section-5-client", "spool"])
def test_role_gives_the_seeds_files(salt_call, qmail, files):
    home = salt_call.home
    salt_call.set_pillar(pillar(home, **qmail))
    ret = salt_call.apply("qmail.control")
    assert all(state["result"] for state in ret.values())
    assert control_files(home) == expect(files)
    second = salt_call.apply("qmail.control")
    assert salt_call.changed(second) == []
    assert control_files(home) == expect(files)


def test_test_mode_changes_nothing(salt_call):
    home = salt_call.home
    salt_call.set_pillar(pillar(home, role="client", me=CLIENT, spool=SPOOL))
    ret = salt_call.apply("qmail.control", test=True)
    # Salt's convention: None for what would change, True for nothing to do
    # (e.g. no smarthost: control/authsenders stays absent).
    assert all(state["result"] is (None if state["changes"] else True)
               for state in ret.values()), ret
    assert "qmail-control-file-managed-smtproutes" in salt_call.changed(ret)
    assert not home.exists()
    # Also on a converged tree whose pillar changed since.
    salt_call.apply("qmail.control")
    before = tree(home)
    salt_call.set_pillar(pillar(home, role="spool", me=CLIENT, control={"smtproutes": None}))
    ret = salt_call.apply("qmail.control", test=True)
    assert salt_call.changed(ret) == [
        "qmail-control-file-absent-smtproutes",
        "qmail-control-file-managed-locals",
    ]
    assert tree(home) == before


def test_overrides_and_removal(salt_call):
    home = salt_call.home
    salt_call.set_pillar(pillar(home, role="client", me=CLIENT, spool=SPOOL))
    salt_call.apply("qmail.control")
    salt_call.set_pillar(pillar(
        home, role="client", me=CLIENT, spool=SPOOL,
        control={"smtproutes": None, "concurrencyremote": 40,
                 "rcpthosts": ["cla.kobe-u.ac.jp", ".cla.kobe-u.ac.jp", "cla.kobe-u.ac.jp"]},
    ))
    ret = salt_call.apply("qmail.control")
    removed = ret["qmail_control_|-qmail-control-file-absent-smtproutes_|-smtproutes_|-absent"]
    assert removed["changes"]["old"] == f":{SPOOL}\n"
    restart = ret["qmail_control_|-qmail-control-file-managed-concurrencyremote_|-"
                  "concurrencyremote_|-managed"]
    assert restart["changes"]["reload"] == "restart"
    files = control_files(home)
    assert "smtproutes" not in files
    assert files["concurrencyremote"][0] == "40\n"
    assert files["rcpthosts"][0] == "cla.kobe-u.ac.jp\n.cla.kobe-u.ac.jp\n"


def test_me_defaults_to_the_fqdn_grain(salt_call):
    """The fqdn grain when it is fully qualified, else the minion id (a single
    label such as a bare "vm" is no name for mail)."""
    salt_call.set_pillar(pillar(salt_call.home, role="spool"))
    fqdn = salt_call.run("grains.get", "fqdn")
    expected = fqdn if "." in fqdn else salt_call.run("grains.get", "id")
    assert salt_call.run("qmail_settings.show")["me"] == expected


# (pillar under qmail, the key the error must name)
BAD = [
    ({"role": "relay"}, "qmail:role"),
    ({"role": 5}, "qmail:role"),
    ({"me": "bad host"}, "qmail:me"),
    ({"spool": ""}, "qmail:spool"),
    ({"role": "client", "spool": CLIENT}, "qmail:spool"),
    ({"role": "client", "spool": "bad host"}, "qmail:spool"),
    ({"role": "client", "spool": ["ccs"]}, "qmail:spool"),
    ({"me": "bad_host"}, "qmail:me"),
    ({"me": 42}, "qmail:me"),
    ({"me": ["a.example.com"]}, "qmail:me"),
    ({"me": "a.example.com\nb.example.com"}, "qmail:me"),
    ({"contorl": {"me": "x.example.com"}}, "qmail:contorl"),
    ({"control": "rcpthosts"}, "qmail:control"),
    ({"control": ["rcpthosts"]}, "qmail:control"),
    ({"control": {"nosuchfile": "x"}}, "qmail:control:nosuchfile"),
    ({"control": {"../me": "x.example.com"}}, "qmail:control:../me"),
    ({"control": {"control/me": "x.example.com"}}, "qmail:control:control/me"),
    ({"control": {"..": "x"}}, "qmail:control:.."),
    ({"control": {"rcpthosts": ["a.example.com", "evil.com\n.com"]}}, "qmail:control:rcpthosts"),
    ({"control": {"rcpthosts": ["a.example.com\0"]}}, "qmail:control:rcpthosts"),
    ({"control": {"rcpthosts": ["a.example.com\r.com"]}}, "qmail:control:rcpthosts"),
    ({"control": {"rcpthosts": ["*.example.com"]}}, "qmail:control:rcpthosts"),
    ({"control": {"rcpthosts": 5}}, "qmail:control:rcpthosts"),
    ({"control": {"rcpthosts": {"a": "b"}}}, "qmail:control:rcpthosts"),
    ({"control": {"rcpthosts": [None]}}, "qmail:control:rcpthosts"),
    ({"role": "spool", "control": {"rcpthosts": None}}, "qmail:control:rcpthosts"),
    ({"control": {"locals": [".example.com"]}}, "qmail:control:locals"),
    ({"control": {"morercpthosts": ["# no comments"]}}, "qmail:control:morercpthosts"),
    ({"control": {"smtproutes": ["example.com"]}}, "qmail:control:smtproutes"),
    ({"control": {"smtproutes": ["a.com:b.com:25:x"]}}, "qmail:control:smtproutes"),
    ({"control": {"smtproutes": [":relay.example.com:0"]}}, "qmail:control:smtproutes"),
    ({"control": {"smtproutes": [":relay.example.com:70000"]}}, "qmail:control:smtproutes"),
    ({"control": {"smtproutes": [":[999.1.1.1]"]}}, "qmail:control:smtproutes"),
    ({"control": {"smtproutes": [":bad host"]}}, "qmail:control:smtproutes"),
    ({"control": {"virtualdomains": ["example.com"]}}, "qmail:control:virtualdomains"),
    ({"control": {"virtualdomains": ["example.com:bad prefix"]}}, "qmail:control:virtualdomains"),
    ({"control": {"concurrencyremote": -1}}, "qmail:control:concurrencyremote"),
    ({"control": {"concurrencyremote": 0}}, "qmail:control:concurrencyremote"),
    ({"control": {"concurrencyremote": 256}}, "qmail:control:concurrencyremote"),
    ({"control": {"concurrencyremote": "forty"}}, "qmail:control:concurrencyremote"),
    ({"control": {"concurrencyremote": True}}, "qmail:control:concurrencyremote"),
    ({"control": {"concurrencyremote": 1.5}}, "qmail:control:concurrencyremote"),
    ({"control": {"databytes": -1}}, "qmail:control:databytes"),
    ({"control": {"timeoutsmtpd": "12\n0"}}, "qmail:control:timeoutsmtpd"),
    ({"control": {"queuelifetime": "1w"}}, "qmail:control:queuelifetime"),
    ({"control": {"defaulthost": "a b"}}, "qmail:control:defaulthost"),
    ({"control": {"me": "x.example.com\ny.example.com"}}, "qmail:control:me"),
    ({"control": {"bouncefrom": "mailer daemon"}}, "qmail:control:bouncefrom"),
    ({"control": {"doublebounceto": "x@y"}}, "qmail:control:doublebounceto"),
    ({"control": {"qmqpservers": ["qmqp.example.com"]}}, "qmail:control:qmqpservers"),
    ({"control": {"badmailfrom": ["noatsign"]}}, "qmail:control:badmailfrom"),
    ({"control": {"smtpgreeting": "hello\nthere"}}, "qmail:control:smtpgreeting"),
    ({"lookup": "/var/qmail"}, "qmail:lookup"),
    ({"lookup": {"home": "var/qmail"}}, "qmail:lookup:home"),
    ({"lookup": {"home": "/var/../etc"}}, "qmail:lookup:home"),
    ({"lookup": {"home": "/var/qmail\n"}}, "qmail:lookup:home"),
    ({"lookup": {"hoem": "/var/qmail"}}, "qmail:lookup:hoem"),
]


def test_there_are_at_least_forty_bad_inputs():
    assert len(BAD) >= 40


@pytest.fixture(scope="module")
def bad_runs(salt_call_synced, tmp_path_factory):
    """``state.apply qmail`` for each BAD pillar (and ``qmail.control`` for a
    client without a spool) over a converged client tree, in one Salt
    process; the tree's snapshot before, and per case the result with the
    tree's snapshot after it."""
    work = tmp_path_factory.mktemp("bad")
    home = work / "qmail"
    salt_call_synced.set_pillar(pillar(home, role="client", me=CLIENT, spool=SPOOL))
    salt_call_synced.apply("qmail.control")
    salt_call_synced.set_pillar({})  # each case's pillar is all the pillar there is
    cases = []
    for qmail, _ in BAD:
        bad = {"role": "client", "me": CLIENT, "spool": SPOOL, "lookup": {"home": str(home)},
               **qmail}
        if isinstance(qmail.get("lookup"), dict):
            bad["lookup"] = {"home": str(home), **qmail["lookup"]}
        cases.append({"pillar": {"qmail": bad}, "fun": "state.apply", "args": ["qmail"]})
    cases.append({"pillar": pillar(home, role="client", me=CLIENT), "fun": "state.apply",
                  "args": ["qmail.control"]})
    before = snapshot(home)
    assert before
    results = salt_call_synced.call_many([{**c, "watch": str(home)} for c in cases], work)
    return before, results


def refused(run, index, key):
    """A render error (no state of any concern ran) whose first message names
    ``key``, no traceback, and the converged tree unchanged."""
    before, results = run
    result = results[index]
    assert "exception" not in result, result["exception"]
    assert "errors" in result, result
    assert "Traceback" not in "\n".join(result["errors"])
    assert f"template: {key}" in result["errors"][0], result["errors"][0]
    assert result["snapshot"] == before


@pytest.mark.parametrize(("index", "key"), [(i, k) for i, (_, k) in enumerate(BAD)],
                         ids=[f"{i:02d}-{k}" for i, (_, k) in enumerate(BAD)])
def test_bad_input_is_refused_and_changes_nothing(bad_runs, index, key):
    refused(bad_runs, index, key)


def test_bad_pillar_fails_control_alone_too(bad_runs):
    refused(bad_runs, len(BAD), "qmail:spool:")
