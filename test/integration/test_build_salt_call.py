"""
qmail.build, qmail.users, qmail.aliases through ``salt-call --local``.

The build orchestration runs for real on the orchestration fixture (a
generated source tree whose Makefile has setup/check targets; not qmail):
salt-call's own state.single, its JSON return, a second run and test mode.
The SLS files are rendered for several pillars (the accounts would be real
accounts of this machine, so they are applied on lab hosts, in test/e2e).
"""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from orchestration_fixture import make_tarball  # noqa: E402

SLS = "qmail.users,qmail.build,qmail.aliases"


def _single(salt_call, home, workdir, tarball, digest, conf_split="23", test=False):
    source = {"preset": "notqmail-1.09", "url": str(tarball), "hash": digest,
              "runtime_ids": True, "errno_fix": False}
    conf = {"conf-qmail": str(home), "conf-split": conf_split, "conf-cc": "cc -O2"}
    args = ["state.single", "qmail_build.installed", f"name={home}",
            f"source={json.dumps(source)}", f"conf={json.dumps(conf)}",
            f"workdir={workdir}", "share={}"]
    if test:
        args.append("test=True")
    (ret,) = salt_call.run(*args, check=False).values()
    return ret


def test_fixture_build_through_salt_call(salt_call, tmp_path):
    tarball, digest = make_tarball(tmp_path / "dl", tmp_path / "fail", tmp_path / "compiles")
    home, work = salt_call.home, tmp_path / "work"
    predicted = _single(salt_call, home, work, tarball, digest, test=True)
    assert predicted["result"] is None and predicted["changes"]["installed"]["old"] is None
    assert not home.exists()
    ret = _single(salt_call, home, work, tarball, digest)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"]["compiled"] is True
    assert (home / "bin" / "qmail-queue").stat().st_mode & 0o7777 == 0o4711
    again = _single(salt_call, home, work, tarball, digest)
    assert again["result"] is True and again["changes"] == {}
    assert len((tmp_path / "compiles").read_text().splitlines()) == 1
    record = salt_call.run("qmail_build.record", str(home))
    assert record["hash"] == digest and record["installed_from"] == "compiled"


def test_fixture_wrong_hash_leaves_no_trace(salt_call, tmp_path):
    tarball, _ = make_tarball(tmp_path / "dl", tmp_path / "fail", tmp_path / "compiles")
    home, work = salt_call.home, tmp_path / "work"
    ret = _single(salt_call, home, work, tarball, "sha256=" + "1" * 64)
    assert ret["result"] is False and "qmail:source:hash" in ret["comment"]
    assert not home.exists() and not work.exists()
    assert not (tmp_path / "compiles").exists()


def _rendered(salt_call, pillar):
    salt_call.set_pillar({"qmail": {"lookup": {"home": str(salt_call.home)}, **pillar}})
    return salt_call.run("state.show_sls", SLS, check=False)


def test_default_render(salt_call):
    got = _rendered(salt_call, {})
    home = str(salt_call.home)
    assert {f"qmail-users-user-present-{u}" for u in
            ("alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails")} <= set(got)
    build = dict(kv for item in got["qmail-build-tree-qmail_build-installed"]["qmail_build"]
                 if isinstance(item, dict) for kv in item.items())
    assert build["source"]["preset"] == "notqmail-1.09"
    assert build["conf"]["conf-qmail"] == home
    rc = dict(kv for item in got["qmail-build-rc-file-managed"]["file"]
              if isinstance(item, dict) for kv in item.items())
    assert rc["name"] == f"{home}/rc" and rc["mode"] == "0755" and rc["user"] == "root"
    assert rc["contents"].endswith("qmail-start ./Maildir/ splogger qmail\n")
    for name in ("root", "postmaster", "mailer-daemon"):
        alias = dict(kv for item in got[f"qmail-aliases-qmail-{name}-file-managed"]["file"]
                     if isinstance(item, dict) for kv in item.items())
        assert alias["name"] == f"{home}/alias/.qmail-{name}"
        assert alias["mode"] == "0644" and alias["contents"] == ["./Maildir/"]
    assert f"qmail-aliases-maildir-file-directory-{home}/alias/Maildir/new" in got


def test_seed_mailbox_delivery_and_forwarding_aliases(salt_call):
    got = _rendered(salt_call, {"delivery": "./Mailbox",
                                "aliases": {"root": ["&admin@cla.kobe-u.ac.jp"],
                                            "postmaster": ["&admin@cla.kobe-u.ac.jp"],
                                            "mailer-daemon": None}})
    rc = dict(kv for item in got["qmail-build-rc-file-managed"]["file"]
              if isinstance(item, dict) for kv in item.items())
    assert rc["contents"].endswith("qmail-start ./Mailbox splogger qmail\n")
    assert "qmail-aliases-qmail-mailer-daemon-file-absent" in got
    assert not any(k.startswith("qmail-aliases-maildir-") for k in got)


BAD = [
    ({"source": {"url": "https://example.org/qmail.tar.gz"}}, "qmail:source:hash"),
    ({"source": {"hash": "sha256=xyz"}}, "qmail:source:hash"),
    ({"build": {"conf": {"spawn": 300}}}, "qmail:build:conf:spawn"),
    ({"aliases": {"root": ["ok", "two\nlines"]}}, "qmail:aliases:root[1]"),
    ({"delivery": "Mailbox"}, "qmail:delivery"),
    ({"build": {"share": {"bogus": 1}}}, "qmail:build:share:bogus"),
]


@pytest.fixture(scope="module")
def bad_renders(salt_call_synced, tmp_path_factory):
    """The SLS files rendered for each BAD pillar, in one Salt process."""
    work = tmp_path_factory.mktemp("build-bad")
    home = work / "qmail"
    salt_call_synced.set_pillar({})  # each case's pillar is all the pillar there is
    cases = [{"pillar": {"qmail": {"lookup": {"home": str(home)}, **bad}}, "args": [SLS]}
             for bad, _ in BAD]
    return home, salt_call_synced.call_many(cases, work)


@pytest.mark.parametrize(("index", "key"), [(i, k) for i, (_, k) in enumerate(BAD)],
                         ids=[k for _, k in BAD])
def test_bad_pillar_fails_the_render_naming_the_key(bad_renders, index, key):
    home, results = bad_renders
    result = results[index]
    assert "errors" in result, result
    text = "\n".join(result["errors"])
    assert key in text and "Traceback" not in text, text
    assert not home.exists()
