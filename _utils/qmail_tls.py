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


# --------------------------------------------------------------------------
# What tlswrapper (BearSSL) and its clients will make of the material
# --------------------------------------------------------------------------
# Bounds on the PEM text, checked before any parsing: a server certificate
# with a long chain is a few kB, an RSA-4096 key about 3 kB.
MAX_CERTIFICATE_PEM = 65536
MAX_KEY_PEM = 16384
# BearSSL's RSA code takes keys up to BR_MAX_RSA_SIZE (4096 bits); fewer
# than 2048 bits no longer count as secure (NIST SP 800-131A).
RSA_BITS = (2048, 4096)
# The NIST curves tlswrapper serves with; BearSSL has no secp256k1 at all.
EC_CURVES = ("secp256r1", "secp384r1")


def _bounded(text, key, limit):
    if isinstance(text, str) and len(text) > limit:
        _fail(key, f"{len(text)} characters: more than the {limit} a certificate chain or "
                   "key takes; is this the right file?")


def check_key_strength(private, key):
    """An RSA key of 2048 to 4096 bits or an EC key on P-256 or P-384."""
    if isinstance(private, rsa.RSAPrivateKey):
        if not RSA_BITS[0] <= private.key_size <= RSA_BITS[1]:
            _fail(key, f"an RSA key of {private.key_size} bits: tlswrapper (BearSSL) needs "
                       f"{RSA_BITS[0]} to {RSA_BITS[1]} bits")
    elif private.curve.name not in EC_CURVES:
        _fail(key, f"an EC key on {private.curve.name}: tlswrapper (BearSSL) serves with "
                   "P-256 (secp256r1) or P-384 (secp384r1) only")


def _which(index):
    return "the certificate" if index == 0 else f"certificate {index + 1} (of the chain)"


def check_validity(certs, key, now=None):
    """Every certificate of the chain valid now: TLS clients check each."""
    now = now or datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - minions run 3.9
    for i, cert in enumerate(certs):
        if cert.not_valid_before_utc > now:
            _fail(key, f"{_which(i)} is not valid before "
                       f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        if cert.not_valid_after_utc < now:
            _fail(key, f"{_which(i)} expired on {cert.not_valid_after_utc:%Y-%m-%d}")


def _extension(cert, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def check_server_use(leaf, key):
    """The leaf may serve TLS: an extendedKeyUsage, where present, allows
    serverAuth; a keyUsage, where present, allows digitalSignature (the
    ECDHE handshakes BearSSL's servers use sign with the key)."""
    usages = _extension(leaf, x509.ExtendedKeyUsage)
    allowed = (x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
               x509.oid.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)
    if usages is not None and not any(u in allowed for u in usages):
        _fail(key, "its extendedKeyUsage does not allow serverAuth: clients refuse it for "
                   "a server")
    key_usage = _extension(leaf, x509.KeyUsage)
    if key_usage is not None and not key_usage.digital_signature:
        _fail(key, "its keyUsage lacks digitalSignature: an ECDHE handshake cannot use it")


def check_pair(certificate, private_key, host, key="qmail:tls"):
    """
    Check a certificate (PEM, with its chain) and its private key (PEM) for
    ``host``: both readable, the key the certificate's, the certificate for
    ``host``, each certificate valid now, the key one BearSSL takes, the
    leaf usable by a TLS server, neither text oversized. Raises
    SaltInvocationError naming ``<key>:certificate`` or ``<key>:key``;
    returns the leaf's facts.
    """
    if not HAS_CRYPTOGRAPHY:  # pragma: no cover
        _fail(key, "checking the certificate needs Python's cryptography in Salt")
    if bool(certificate) != bool(private_key):
        if private_key:
            _fail(f"{key}:certificate", f"missing: {key}:key is given without its certificate")
        _fail(f"{key}:key", f"missing: {key}:certificate is given without its private key")
    _bounded(certificate, f"{key}:certificate", MAX_CERTIFICATE_PEM)
    _bounded(private_key, f"{key}:key", MAX_KEY_PEM)
    private = load_key(private_key, f"{key}:key")
    check_key_strength(private, f"{key}:key")
    certs = load_certificates(certificate, f"{key}:certificate")
    leaf = certs[0]
    if _spki(leaf.public_key()) != _spki(private.public_key()):
        _fail(f"{key}:key", "does not match the certificate (the first one in "
                            f"{key}:certificate): another key pair")
    dns = names(leaf)
    if not any(covers(n, host) for n in dns):
        _fail(f"{key}:certificate", f"is for {', '.join(dns) or 'no DNS name'}, "
                                    f"not for {host} (qmail:me)")
    check_validity(certs, f"{key}:certificate")
    check_server_use(leaf, f"{key}:certificate")
    return {"names": dns, "fingerprint": fingerprint(leaf),
            "not_after": leaf.not_valid_after_utc.isoformat()}


def bundle(private_key, certificate):
    """The one PEM file tlswrapper reads: the key, then the certificates,
    normalised (LF line ends, one newline after each block)."""
    blocks = _blocks(private_key, "key", KEY_KINDS)
    blocks += _blocks(certificate, "certificate", ("CERTIFICATE",))
    return "".join(blocks)
