"""
TLS material for qmail-smtpd behind tlswrapper (``__utils__``): parse and
check a certificate and its key from PEM text, and assemble the one PEM file
tlswrapper reads (key, then certificate and chain).

tlswrapper is built on BearSSL, which signs with RSA and EC keys only, and
cannot ask for a passphrase: those are the keys accepted here.
"""

import datetime
import hashlib
import re

from salt.exceptions import SaltInvocationError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - Salt 3008 depends on cryptography
    HAS_CRYPTOGRAPHY = False

_BLOCK_RE = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END \1-----\r?\n?")


KEY_KINDS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def _blocks(text, key, kinds):
    """The PEM blocks of ``text``, each of a kind in ``kinds``; anything else
    (stray text, other blocks) is refused: a typo must not pass unnoticed.
    Errors never quote the text: it may be a secret key."""
    if not isinstance(text, str) or not text.strip():
        _fail(key, "expected PEM text")
    if not text.isascii():
        _fail(key, "PEM text is ASCII; this holds other characters")
    rest = text.strip() + "\n"
    found = []
    pos = 0
    for match in _BLOCK_RE.finditer(rest):
        if rest[pos:match.start()].strip():
            _fail(key, f"{len(rest[pos:match.start()].strip())} characters of text before "
                       "a PEM block: only PEM blocks belong here")
        if match.group(1) not in kinds:
            _fail(key, f"a {match.group(1)!r} block where {' or '.join(kinds)} belongs")
        found.append(match.group(0).replace("\r\n", "\n").rstrip("\n") + "\n")
        pos = match.end()
    if rest[pos:].strip() or not found:
        _fail(key, f"not PEM text of a {' or '.join(kinds)} (no complete "
                   "-----BEGIN/-----END block with base64 between)")
    return found


def load_key(text, key):
    """The private key in PEM ``text`` (RSA or EC, unencrypted)."""
    blocks = _blocks(text, key, KEY_KINDS)
    if len(blocks) != 1:
        _fail(key, "expected exactly one private key")
    block = blocks[0]
    try:
        private = serialization.load_pem_private_key(block.encode(), password=None)
    except TypeError:
        _fail(key, "the key is encrypted: tlswrapper cannot ask for a passphrase")
    except ValueError as exc:
        _fail(key, f"not a readable private key ({exc.__class__.__name__})")
    if not isinstance(private, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        _fail(key, f"a {type(private).__name__.lstrip('_')} key: tlswrapper (BearSSL) "
                   "takes RSA or EC keys only")
    return private


def load_certificates(text, key):
    """The certificates in PEM ``text``: the server's first, then its chain."""
    certs = []
    for i, block in enumerate(_blocks(text, key, ("CERTIFICATE",))):
        try:
            certs.append(x509.load_pem_x509_certificate(block.encode()))
        except ValueError as exc:
            _fail(key, f"certificate {i + 1} is not readable ({exc.__class__.__name__})")
    return certs


def _spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def names(cert):
    """The DNS names a certificate is for: its subjectAltName's, else its CN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        return [a.value.lower() for a in cert.subject.get_attributes_for_oid(
            x509.oid.NameOID.COMMON_NAME)]


def covers(pattern, host):
    """RFC 6125: ``pattern`` (a DNS name, maybe ``*.`` + a domain) covers ``host``."""
    host = host.lower()
    if pattern.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == host


def fingerprint(cert):
    """SHA-256 of the certificate's DER, as ``AB:CD:...`` (what openssl shows)."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2)).upper()


def check_pair(certificate, private_key, host, key="qmail:tls"):
    """
    Check a certificate (PEM, with its chain) and its private key (PEM) for
    ``host``: both readable, the key the certificate's, the certificate for
    ``host`` and not expired. Raises SaltInvocationError naming ``<key>:certificate``
    or ``<key>:key``; returns the leaf's facts.
    """
    if not HAS_CRYPTOGRAPHY:  # pragma: no cover
        _fail(key, "checking the certificate needs Python's cryptography in Salt")
    if bool(certificate) != bool(private_key):
        if private_key:
            _fail(f"{key}:certificate", f"missing: {key}:key is given without its certificate")
        _fail(f"{key}:key", f"missing: {key}:certificate is given without its private key")
    private = load_key(private_key, f"{key}:key")
    certs = load_certificates(certificate, f"{key}:certificate")
    leaf = certs[0]
    if _spki(leaf.public_key()) != _spki(private.public_key()):
        _fail(f"{key}:key", "does not match the certificate (the first one in "
                            f"{key}:certificate): another key pair")
    dns = names(leaf)
    if not any(covers(n, host) for n in dns):
        _fail(f"{key}:certificate", f"is for {', '.join(dns) or 'no DNS name'}, "
                                    f"not for {host} (qmail:me)")
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - minions run 3.9
    if leaf.not_valid_after_utc < now:
        _fail(f"{key}:certificate", f"expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    return {"names": dns, "fingerprint": fingerprint(leaf),
            "not_after": leaf.not_valid_after_utc.isoformat()}


def bundle(private_key, certificate):
    """The one PEM file tlswrapper reads: the key, then the certificates,
    normalised (LF line ends, one newline after each block)."""
    blocks = _blocks(private_key, "key", KEY_KINDS)
    blocks += _blocks(certificate, "certificate", ("CERTIFICATE",))
    return "".join(blocks)
