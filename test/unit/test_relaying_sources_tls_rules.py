"""
Issue 19's rules (items 3-6), at the level of the schema: values a hostile
review found passing ``qmail_settings.merge`` are refused naming the full
pillar key, and their near misses still pass. The whole-formula corpus of
the same classes is ``test/integration/data/bad_pillars_relaying.yaml``.
"""

import datetime
import pathlib
import re

import pytest
import yaml
from cryptography.x509.oid import ExtendedKeyUsageOID
from salt.exceptions import SaltInvocationError

from _utils import qmail_tls
from _utils import qmail_validate as v
from _utils.qmail_settings_lookup import TOFS_KEYS
from lab import tls

REPO = pathlib.Path(__file__).resolve().parents[2]
PARAMETERS = REPO / "qmail" / "parameters"
SPOOL = "ccs.cla.kobe-u.ac.jp"
PILLAR = {"role": "spool", "me": SPOOL}
HASH = "sha256=" + "0" * 64


def load(path):
    return yaml.safe_load((PARAMETERS / path).read_text()) or {}


@pytest.fixture
def merge(modules):
    def _merge(pillar):
        return modules.qmail_settings.merge(
            load("defaults.yaml"), load("os_family/Debian.yaml"), {**PILLAR, **pillar})
    return _merge


def refused(merge, pillar, key, says=""):
    with pytest.raises(SaltInvocationError) as caught:
        merge(pillar)
    text = str(caught.value)
    assert text.startswith(key + ": "), text
    assert says in text, text
    return text


# -- 3. relaying and routing ----------------------------------------------
@pytest.mark.parametrize(("control", "says"), [
    ({"percenthack": [SPOOL]}, f"{SPOOL!r} is in rcpthosts: x%victim.example@{SPOOL} would "
                               "be accepted from anyone and relayed (open relay)"),
    ({"rcpthosts": [SPOOL, ".kobe-u.ac.jp"], "percenthack": ["a.cla.kobe-u.ac.jp"]},
     "covered by rcpthosts's '.kobe-u.ac.jp'"),
    ({"morercpthosts": ["old.example.org"], "percenthack": ["OLD.example.org"]},
     "is in morercpthosts"),
    ({"rcpthosts": ["other.example.org"], "percenthack": [SPOOL]}, "this host's own"),
])
def test_percenthack_on_an_accepted_or_own_domain_is_an_open_relay(merge, control, says):
    refused(merge, {"control": control}, "qmail:control:percenthack[0]", says)


def test_percenthack_keeps_a_domain_nobody_relays_through(merge):
    control = {"rcpthosts": [SPOOL, ".cla.kobe-u.ac.jp"],
               "percenthack": ["# gateways", "legacy.example.org", "kobe-u.ac.jp"]}
    settings = merge({"control": control})
    assert settings["control_managed"]["percenthack"] == control["percenthack"]


@pytest.mark.parametrize(("entry", "says"), [
    (".com:x", "covers the public suffix 'com': that would deliver every domain under it "
               "to 'x' here"),
    (".co.uk:x", "covers the public suffix 'co.uk'"),
    ("user@.ac.jp:x", "covers the public suffix 'ac.jp'"),
])
def test_virtualdomains_wildcards_over_a_public_suffix(modules, entry, says):
    key = "qmail:control:virtualdomains"
    with pytest.raises(SaltInvocationError, match=rf"^{key}\[0\]: ") as caught:
        modules.qmail_control.normalize("virtualdomains", [entry], key)
    assert says in str(caught.value)


@pytest.mark.parametrize("entry", [".lists.cla.kobe-u.ac.jp:lists", "example.com:ex",
                                   "joe@example.org:joe", ".example.co.uk:x"])
def test_virtualdomains_below_a_public_suffix_pass(modules, entry):
    assert modules.qmail_control.normalize("virtualdomains", [entry]) == entry + "\n"


@pytest.mark.parametrize(("entry", "says"), [
    (":[0.0.0.0]", "unspecified address"), (":0.0.0.0:25", "unspecified address"),
    ("example.org:[0.9.9.9]", "unspecified address"),
    (":[255.255.255.255]", "broadcast"), (":[239.1.2.3]", "multicast"),
    (":[::]", "is not domain:relay[:port]"), (":[1.2.3]", "is not an IPv4 address"),
])
def test_smtproutes_to_no_real_relay_are_refused(modules, entry, says):
    with pytest.raises(SaltInvocationError, match=r"^smtproutes\[0\]: ") as caught:
        modules.qmail_control.normalize("smtproutes", [entry])
    assert says in str(caught.value)


@pytest.mark.parametrize("entry", [":[10.0.0.1]:25", "example.org:[127.0.0.1]:10025",
                                   ":mx1.example.org", "example.org:", ".example.org:smtp2"])
def test_smtproutes_to_real_relays_pass(modules, entry):
    assert modules.qmail_control.normalize("smtproutes", [entry]) == entry + "\n"


@pytest.mark.parametrize(("line", "says"), [
    ("../../../../etc/cron.d/x", "outside the alias home"),
    ("/etc/cron.d/x@", "outside the alias home"),
    ("/var/qmail/alias/Maildir/", "write it ./-relative"),
    (".qmail-default", "outside the alias home"),
    ("./Maildir/../x/", "'.' or '..' part"),
    ("./", "the alias home /var/qmail/alias itself"),
])
def test_alias_file_deliveries_stay_in_the_alias_home(merge, line, says):
    refused(merge, {"aliases": {"root": [line]}}, "qmail:aliases:root[0]", says)


def test_alias_deliveries_that_stay_pass(merge):
    settings = merge({"aliases": {"root": ["./Maildir/", "./Mailbox", "&joe@example.org",
                                           "|preline cat", "# note"]}})
    assert settings["aliases_files"]["root"][0] == "./Maildir/"
    assert settings["aliases_maildirs"] == ["/var/qmail/alias/Maildir"]


@pytest.mark.parametrize(("line", "says"), [
    ("/etc/cron.d/x@", "outside the user's home"),
    ("../../etc/cron.d/x", "outside the user's home"),
    ("./Maildir/../../x", "'.' or '..' part"),
    ("x y@example.org", "an address to forward to"),
    ("&x y", "an address to forward to"),
    ("Maildir/", "is not a .qmail delivery"),
])
def test_the_default_delivery_stays_in_the_home(merge, line, says):
    refused(merge, {"delivery": line}, "qmail:delivery", says)


@pytest.mark.parametrize("line", ["./Maildir/", "./Mailbox", "&postmaster@example.org",
                                  "joe@example.org", "&root", "|preline procmail -a x@y"])
def test_good_default_deliveries_pass(merge, line):
    assert merge({"delivery": line})["delivery_arg"].strip("'") == line


# -- 4. sources ---------------------------------------------------------------
@pytest.mark.parametrize(("url", "says"), [
    ("file://etc/shadow", "names the host 'etc'; a local file is file:///absolute/path"),
    ("file:///srv/../etc/shadow", "is not a canonical path"),
    ("/srv/./q.tar.gz", "is not a canonical path"),
    ("https://admin:hunter2@example.org/q.tar.gz", "with credentials"),
    ("ftp://anonymous@ftp.example.org/q.tar.gz", "with credentials"),
    ("http://example.org/a/../../q.tar.gz", "'..' part"),
    ("https://exa mple.org/q.tar.gz", "characters a URL may not hold"),
])
def test_bad_source_urls_are_refused(merge, url, says):
    text = refused(merge, {"source": {"url": url, "hash": HASH}}, "qmail:source:url", says)
    assert "hunter2" not in text


@pytest.mark.parametrize(("url", "kept"), [
    ("file:///srv/notqmail-1.09.tar.xz", "/srv/notqmail-1.09.tar.xz"),
    ("file://localhost/srv/q.tar.gz", "/srv/q.tar.gz"),
    ("/srv/q.tar.gz", "/srv/q.tar.gz"),
    ("https://mirror.example.org:8443/q.tar.gz", "https://mirror.example.org:8443/q.tar.gz"),
    ("salt://qmail-src/q.tar.gz", "salt://qmail-src/q.tar.gz"),
])
def test_good_source_urls_keep_one_canonical_form(merge, url, kept):
    assert merge({"source": {"url": url, "hash": HASH}})["build_source"]["url"] == kept


# -- 6. no traceback ---------------------------------------------------------
@pytest.mark.parametrize(("home", "says"), [
    ("/srv/" + "h" * 300, "a name of 300 characters; a file name has at most 255 (NAME_MAX)"),
    ("/srv/" + "/".join(["d" * 200] * 25), "longer than 4095 characters (PATH_MAX)"),
])
def test_overlong_homes_are_refused(merge, home, says):
    refused(merge, {"lookup": {"home": home}}, "qmail:lookup:home", says)


def test_a_home_that_is_a_file_is_refused(merge, tmp_path):
    (tmp_path / "qmail").write_text("not a folder\n")
    refused(merge, {"lookup": {"home": str(tmp_path / "qmail")}}, "qmail:lookup:home",
            "is a file, not a folder")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert merge({"lookup": {"home": str(tmp_path / "link")}})["lookup"]["home"] == str(
        tmp_path / "link")


@pytest.mark.parametrize(("files", "key", "says"), [
    ({"smtpd-run": []}, "qmail:tofs:source_files:smtpd-run", "empty"),
    ({"smtp-run": ["service/smtpd-run"]}, "qmail:tofs:source_files:smtp-run",
     "unknown file key; known: rc, send-run"),
])
def test_tofs_source_files_name_known_states_and_files(merge, files, key, says):
    refused(merge, {"tofs": {"source_files": files}}, key, says)


def test_tofs_keys_are_the_ones_the_sls_files_use(merge):
    used = set()
    for sls in (REPO / "qmail").rglob("*.sls"):
        text = sls.read_text()
        used |= set(re.findall(r'qmail_tofs\.(?:files_switch|contents)"\]\(\[[^]]*\], "([^"]+)"',
                               text))
        # A loop's key (`for name, file in [("submission", ...), ...]`).
        if re.search(r'qmail_tofs\.(?:files_switch|contents)"\]\(\[[^]]*\], name,', text):
            used |= set(re.findall(r'\("([\w-]+)", \w+\.files\.\w+\)', text))
    assert used == set(TOFS_KEYS)
    files = {"smtpd-run": ["service/smtpd-run"], "log-run": ["service/log-run"]}
    assert merge({"tofs": {"source_files": files}})["tofs"]["source_files"] == files


# -- shared validators --------------------------------------------------------
def test_covered_by_finds_the_entry_or_wildcard():
    hosts = {"example.org", ".cla.kobe-u.ac.jp"}
    assert v.covered_by("Example.ORG", hosts) == "example.org"
    assert v.covered_by("a.b.cla.kobe-u.ac.jp", hosts) == ".cla.kobe-u.ac.jp"
    assert v.covered_by("cla.kobe-u.ac.jp", hosts) is None  # .dom is below dom only
    assert v.covered_by("www.example.org", hosts) is None


def test_path_length_bounds():
    assert v.path("/" + "n" * 255, "k") == "/" + "n" * 255
    with pytest.raises(SaltInvocationError, match="^k: .*NAME_MAX"):
        v.path("/" + "n" * 256, "k")
    # Normalised first: what counts is the path qmail will use.
    assert v.path("/srv/" + "x/../" * 1000 + "q", "k") == "/srv/q"


# -- 5. TLS material -----------------------------------------------------------
@pytest.fixture(scope="module")
def ca():
    return tls.CA()


def check(cert, key):
    return qmail_tls.check_pair(cert, key, SPOOL)


@pytest.mark.parametrize(("make", "key", "says"), [
    (lambda ca: ca.issue(SPOOL, not_yet=True), "certificate", "the certificate is not valid "
                                                              "before"),
    (lambda ca: ca.issue(SPOOL, key=tls.new_key("secp256k1")), "key",
     "an EC key on secp256k1: tlswrapper (BearSSL) serves with P-256"),
    (lambda ca: ca.issue(SPOOL, key=tls.new_key("rsa1024")), "key",
     "an RSA key of 1024 bits: tlswrapper (BearSSL) needs 2048 to 4096 bits"),
    (lambda ca: ca.issue(SPOOL, usages=[ExtendedKeyUsageOID.CLIENT_AUTH]), "certificate",
     "does not allow serverAuth"),
])
def test_tls_material_bearssl_or_clients_refuse(ca, make, key, says):
    cert, private = make(ca)
    with pytest.raises(SaltInvocationError, match=f"^qmail:tls:{key}: ") as caught:
        check(cert, private)
    assert says in str(caught.value)


@pytest.mark.parametrize("window", [{"expired": True}, {"not_yet": True}])
def test_every_certificate_of_the_chain_is_valid_now(window):
    other = tls.CA(**window)
    cert, key = other.issue(SPOOL)
    with pytest.raises(SaltInvocationError, match=r"^qmail:tls:certificate: certificate 2 "
                                                  r"\(of the chain\) (expired|is not valid)"):
        check(cert + other.pem, key)


def test_validity_is_judged_at_the_time_given(ca):
    cert, _ = ca.issue(SPOOL, days=30)
    certs = qmail_tls.load_certificates(cert, "k")
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=40)  # noqa: UP017
    with pytest.raises(SaltInvocationError, match="^k: the certificate expired on"):
        qmail_tls.check_validity(certs, "k", later)
    qmail_tls.check_validity(certs, "k")


@pytest.mark.parametrize("which", ["certificate", "key"])
def test_oversized_pem_is_refused_before_parsing(ca, which):
    cert, key = ca.issue(SPOOL)
    big = "-----BEGIN CERTIFICATE-----\n" + "QUFB" * 500_000 + "\n-----END CERTIFICATE-----\n"
    pair = {"certificate": cert, "key": key, which: big}
    with pytest.raises(SaltInvocationError, match=f"^qmail:tls:{which}: 2000055 characters: "
                                                  "more than"):
        check(pair["certificate"], pair["key"])


def test_good_material_passes(ca):
    for key in (tls.new_key("ec"), tls.new_key("rsa")):
        for usages in (None, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]):
            cert, private = ca.issue(SPOOL, key=key, usages=usages)
            assert check(cert + ca.pem, private)["names"] == [SPOOL]


@pytest.mark.parametrize(("entry", "says"), [
    (".kobe.jp", "covers the public suffixes '*.kobe.jp'"),  # the PSL has *.kobe.jp
    (".foo.kobe.jp", "covers the public suffix 'foo.kobe.jp'"),
])
def test_a_wildcard_over_a_star_rule_covers_public_suffixes(entry, says):
    with pytest.raises(SaltInvocationError, match="^k: ") as caught:
        v.wildcard(entry, "k")
    assert says in str(caught.value)
    # Below them, and the PSL's exception (!city.kobe.jp), a wildcard is fine.
    assert v.wildcard(".x.foo.kobe.jp", "k") == ".x.foo.kobe.jp"
    assert v.wildcard(".city.kobe.jp", "k") == ".city.kobe.jp"


def test_a_leaf_whose_key_usage_cannot_sign_is_refused(ca):
    """keyUsage without digitalSignature (keyEncipherment only): ECDHE, the
    only key exchange left, signs with the server's key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = tls.new_key("rsa")
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017
    usage = x509.KeyUsage(digital_signature=False, content_commitment=False,
                          key_encipherment=True, data_encipherment=False, key_agreement=False,
                          key_cert_sign=False, crl_sign=False, encipher_only=False,
                          decipher_only=False)
    cert = (x509.CertificateBuilder().subject_name(ca.cert.subject).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(SPOOL)]), critical=False)
            .add_extension(usage, critical=True).sign(ca.key, hashes.SHA256()))
    with pytest.raises(SaltInvocationError, match="^qmail:tls:certificate: its keyUsage lacks "
                                                  "digitalSignature"):
        check(tls.cert_pem(cert), tls.key_pem(key))


def test_tofs_candidates_refuse_an_empty_list_from_the_command_line(modules):
    tofs = {"files_switch": ["id"], "path_prefix": "qmail", "dirs": {"files": "files",
                                                                     "default": "default"},
            "source_files": {"smtpd-run": []}}
    with pytest.raises(SaltInvocationError, match="^tofs:source_files:smtpd-run: empty"):
        modules.qmail_tofs.candidates(["service/smtpd-run"], "smtpd-run", tofs)
    assert modules.qmail_tofs.candidates(["service/log-run"], "log-run", tofs)[-1] == (
        "salt://qmail/files/default/service/log-run")
