"""The qmail_tls modules on Salt's loader: the PEM file tlswrapper reads is
written whole, root's alone, only from a matching pair; a bad pair leaves
the file as it was; test=True writes nothing. Certificates made by lab/tls.py."""

import os

import pytest

from lab import tls

HOST = "ccs.cla.kobe-u.ac.jp"
ROOT = {"user": "root", "group": "root"}  # the SLS gives qmail:lookup:rootgroup


@pytest.fixture(scope="module")
def pair():
    ca = tls.CA()
    return ca.issue(HOST)


def test_pem_managed_writes_key_then_certificate_0600(states, tmp_path, pair, test_mode):
    cert, key = pair
    pem = tmp_path / "smtpd.pem"
    ret = states.qmail_tls.pem_managed(name=str(pem), host=HOST, **ROOT, key=key,
                                       certificate=cert, test=test_mode)
    assert ret.result is (None if test_mode else True), ret.comment
    assert ret.changes == {"pem": "created"}
    assert pem.exists() is not test_mode
    if not test_mode:
        assert pem.read_text() == key + cert
        assert oct(pem.stat().st_mode & 0o777) == "0o600"
        again = states.qmail_tls.pem_managed(name=str(pem), host=HOST, **ROOT, key=key,
                                             certificate=cert)
        assert again.result is True and again.changes == {}


def test_pem_managed_from_files_and_a_new_certificate(states, tmp_path, pair):
    cert, key = pair
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "cert.pem").write_text(cert)
    pem = tmp_path / "smtpd.pem"
    pem.write_text("old\n")
    os.chmod(pem, 0o644)
    ret = states.qmail_tls.pem_managed(name=str(pem), host=HOST, **ROOT,
                                       key_file=str(tmp_path / "key.pem"),
                                       certificate_file=str(tmp_path / "cert.pem"))
    assert ret.result is True
    assert ret.changes["pem"] == "new key or certificate"
    assert ret.changes["mode"] == {"old": "0644", "new": "0600"}
    assert key not in str(ret.changes)  # never the key in the output
    assert pem.read_text() == key + cert


@pytest.mark.parametrize("bad", ["other key", "other host", "garbage"])
def test_a_bad_pair_leaves_the_file_as_it_was(states, tmp_path, pair, bad):
    cert, key = pair
    pem = tmp_path / "smtpd.pem"
    pem.write_text(key + cert)
    os.chmod(pem, 0o600)
    if bad == "other key":
        key = tls.key_pem(tls.new_key())
    elif bad == "other host":
        cert, key = tls.CA().issue("mail.example.org")
    else:
        cert = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
    ret = states.qmail_tls.pem_managed(name=str(pem), host=HOST, **ROOT, key=key, certificate=cert)
    assert ret.result is False and ret.changes == {}
    assert "left as it was" in ret.comment and "qmail:tls:" in ret.comment
    assert pem.read_text() == pair[1] + pair[0]


def test_certificate_reports_names_and_fingerprint_never_the_key(modules, tmp_path, pair):
    cert, key = pair
    pem = tmp_path / "smtpd.pem"
    pem.write_text(key + cert)
    os.chmod(pem, 0o600)
    info = modules.qmail_tls.certificate(str(pem))
    assert info["names"] == [HOST]
    assert info["fingerprint"] == tls.fingerprint_pem(cert)
    assert info["mode"] == "0600" and info["chain"] == 0
    assert "PRIVATE" not in str(info)
