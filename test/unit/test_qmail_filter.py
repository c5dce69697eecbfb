"""qmail:filter on Salt's loader: the settings (through qmail_settings.merge),
the DKIM keys (qmail_filter_keys), and the qmail_dkim module and state on a
scratch folder. The bad pillar cases are in
test/integration/data/bad_pillars_filter.yaml; the chain itself under real
qmail in test/e2e/test_filter_lab.py."""

import base64
import json
import os
import pathlib
import pwd

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from salt.exceptions import SaltInvocationError

PARAMETERS = pathlib.Path(__file__).resolve().parents[2] / "qmail" / "parameters"
SPOOL = "ccs.cla.kobe-u.ac.jp"
PILLAR = {"role": "spool", "me": SPOOL}
USER = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def merge(modules):
    def _merge(pillar):
        return modules.qmail_settings.merge(
            yaml.safe_load((PARAMETERS / "defaults.yaml").read_text()),
            yaml.safe_load((PARAMETERS / "os_family/Debian.yaml").read_text()),
            {**PILLAR, **pillar})
    return _merge


def pem(private):
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


def test_off_by_default(merge):
    filt = merge({})["filter"]
    assert not filt["active"] and filt["qmailqueue"] == "" and filt["packages"] == []


def test_chain_settings_as_filter_json(merge):
    filt = merge({"filter": {"steps": ["spamassassin", "dkim"], "timeout": 20, "dkim": {
        "domains": {SPOOL: {"selector": "s2", "keys": {"s1": "", "s2": ""}}}}}})["filter"]
    assert filt["qmailqueue"] == "/etc/qmail-filter/qmail-filter"
    config = filt["config"]
    assert config["qmail_queue"] == "/var/qmail/bin/qmail-queue" and config["custom_errors"]
    assert [s["name"] for s in config["steps"]] == ["spamassassin", "dkim"]
    assert config["steps"][1]["domains"] == {SPOOL: {
        "selector": "s2", "algorithm": "rsa",
        "file": f"/etc/qmail-filter/dkim/s2.{SPOOL}.key"}}
    assert all(s["timeout"] == 20 for s in config["steps"])
    assert filt["dkim_keys"] == {SPOOL: {"s1": "", "s2": ""}}
    assert filt["packages"] == ["python3-cryptography", "python3-dkim", "spamc", "spamd"]
    assert filt["spamd"] == "spamd"
    json.dumps(config)  # filter.json: data only


def test_netqmail_has_no_custom_refusal_text(merge):
    filt = merge({"source": {"preset": "netqmail-1.06"}, "filter": {"steps": ["spf"]}})
    assert filt["filter"]["active"] and not filt["filter"]["config"]["custom_errors"]


def test_key_material_stays_out_of_filter_json(merge):
    key = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    filt = merge({"filter": {"steps": ["dkim"], "dkim": {"domains": {SPOOL: {
        "keys": {"s1": key}}}}}})["filter"]
    assert "PRIVATE" not in json.dumps(filt["config"])
    assert filt["dkim_keys"][SPOOL]["s1"].startswith("-----BEGIN PRIVATE KEY-----")


def test_given_keys_checked_and_normalised(loaders):
    check = loaders.utils["qmail_filter_keys.check"]
    algo, data = check(pem(rsa.generate_private_key(public_exponent=65537, key_size=3072)), "k")
    assert algo == "rsa" and data.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    ed = ed25519.Ed25519PrivateKey.generate()
    algo, data = check(pem(ed), "k")
    seed = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    assert algo == "ed25519" and data == base64.b64encode(seed) + b"\n"
    assert check(data.decode(), "k") == (algo, data)  # dknewkey's own form
    with pytest.raises(SaltInvocationError, match=r"^k: an RSA key of 1024 bits"):
        check(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "k")


def test_dns_record_publishes_the_public_half(loaders):
    utils = loaders.utils
    data = utils["qmail_filter_keys.generate"]("rsa")
    _, private = utils["qmail_filter_keys.load"](data)
    spki = private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    assert utils["qmail_filter_keys.record"](data) == (
        f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}")
    assert utils["qmail_filter_keys.record"](
        utils["qmail_filter_keys.generate"]("ed25519")).startswith("v=DKIM1; k=ed25519; p=")


@pytest.fixture
def keys_dir(tmp_path):
    return str(tmp_path / "dkim")


def test_keys_managed_makes_rotates_and_removes(states, modules, keys_dir, test_mode):
    given = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ret = states.qmail_dkim.keys_managed(name=keys_dir, keys={SPOOL: {"s1": ""}}, user=USER,
                                         test=test_mode)
    made = os.path.join(keys_dir, f"s1.{SPOOL}.key")
    assert ret.changes == {"make": [made]}
    if test_mode:
        assert ret.result is None and not os.path.exists(keys_dir)
        return
    assert ret.result is True and "s1._domainkey.ccs.cla.kobe-u.ac.jp TXT" in ret.comment
    assert "PRIVATE" not in ret.comment
    assert oct(os.stat(made).st_mode & 0o7777) == "0o400"
    first = pathlib.Path(made).read_bytes()
    # Rotation: a second selector (given), the first kept and still published.
    keys = {SPOOL: {"s1": "", "s2": given}}
    ret = states.qmail_dkim.keys_managed(name=keys_dir, keys=keys, user=USER)
    assert ret.changes == {"make": [os.path.join(keys_dir, f"s2.{SPOOL}.key")]}
    assert pathlib.Path(made).read_bytes() == first
    records = modules.qmail_dkim.dns_record(SPOOL, keys_dir=keys_dir)
    assert sorted(records) == [f"s1._domainkey.{SPOOL}", f"s2._domainkey.{SPOOL}"]
    assert states.qmail_dkim.keys_managed(name=keys_dir, keys=keys, user=USER).changes == {}
    # A key made unreadable is put right; the old selector removed when unlisted.
    os.chmod(made, 0)
    ret = states.qmail_dkim.keys_managed(name=keys_dir, keys=keys, user=USER)
    assert ret.changes == {"fix": [made]} and os.stat(made).st_mode & 0o777 == 0o400
    ret = states.qmail_dkim.keys_managed(name=keys_dir, keys={SPOOL: {"s2": given}}, user=USER)
    assert ret.changes == {"remove": [made]} and not os.path.exists(made)
    assert list(modules.qmail_dkim.dns_record(SPOOL, keys_dir=keys_dir)) == [
        f"s2._domainkey.{SPOOL}"]
    with pytest.raises(SaltInvocationError, match="no DKIM key for example.org"):
        modules.qmail_dkim.dns_record("example.org", keys_dir=keys_dir)


def test_an_encrypted_key_is_named_as_such(loaders):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(b"secret")).decode()
    with pytest.raises(SaltInvocationError, match=r"^k: the key is encrypted"):
        loaders.utils["qmail_filter_keys.check"](text, "k")
