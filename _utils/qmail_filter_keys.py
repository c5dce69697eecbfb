"""
DKIM keys of ``qmail:filter`` (``__utils__``): check a key given in pillar,
make a new one, and the DNS TXT record that publishes its public half.

Key files are in the form dkimpy (the filter's signer) reads: RSA as a
PKCS#1 PEM block (what ``dknewkey`` writes), Ed25519 as the base64 of the
32-byte private seed (what ``dknewkey --ktype ed25519`` writes). Errors
never quote the key: it is a secret.
"""

import base64
import re

from salt.exceptions import SaltInvocationError

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - Salt 3008 depends on cryptography
    HAS_CRYPTOGRAPHY = False

RSA_BITS = 2048  # the least accepted (RFC 8301: 1024 is no longer enough)
ALGORITHMS = ("rsa", "ed25519")
_PEM_RE = re.compile(r"\A-----BEGIN ((?:RSA )?PRIVATE KEY)-----\n[A-Za-z0-9+/=\n]+"
                     r"-----END \1-----\n?\Z")
_SEED_RE = re.compile(r"\A[A-Za-z0-9+/]{43}=\Z")


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def _file_bytes(private):
    """The key file's content for a cryptography private key."""
    if isinstance(private, ed25519.Ed25519PrivateKey):
        seed = private.private_bytes(serialization.Encoding.Raw,
                                     serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        return base64.b64encode(seed) + b"\n"
    return private.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())


def check(text, key):
    """
    A private key from pillar: PEM text of an RSA key of at least 2048 bits
    or an Ed25519 key (or a dknewkey Ed25519 seed). Returns ``(algorithm,
    file bytes)``; a public key, a short key or anything else is refused
    naming ``key``.
    """
    if not isinstance(text, str) or not text.strip():
        _fail(key, "expected the PEM text of a private key")
    body = text.strip().replace("\r\n", "\n") + "\n"
    if not body.isascii():
        _fail(key, "a key is ASCII text; this holds other characters")
    if _SEED_RE.match(body.strip()):
        private = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(body.strip()))
        return "ed25519", _file_bytes(private)
    if "PUBLIC KEY-----" in body:
        _fail(key, "a public key: the filter signs with the private key (the public half "
                   "is published in DNS: qmail_dkim.dns_record)")
    if "ENCRYPTED PRIVATE KEY-----" in body or "Proc-Type: 4,ENCRYPTED" in body:
        _fail(key, "the key is encrypted: the filter cannot ask for a passphrase")
    if "CERTIFICATE-----" in body:
        _fail(key, "a certificate: DKIM needs a private key, no certificate")
    if not _PEM_RE.match(body):
        _fail(key, "not the PEM text of one private key (-----BEGIN PRIVATE KEY----- or "
                   "-----BEGIN RSA PRIVATE KEY-----, base64, the END line)")
    try:
        private = serialization.load_pem_private_key(body.encode(), password=None)
    except TypeError:
        _fail(key, "the key is encrypted: the filter cannot ask for a passphrase")
    except ValueError as exc:
        _fail(key, f"not a readable private key ({exc.__class__.__name__})")
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < RSA_BITS:
            _fail(key, f"an RSA key of {private.key_size} bits: DKIM keys need at least "
                       f"{RSA_BITS} bits (RFC 8301); receivers ignore shorter ones")
        return "rsa", _file_bytes(private)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return "ed25519", _file_bytes(private)
    _fail(key, f"a {type(private).__name__.lstrip('_')}: DKIM signs with RSA (2048 bits "
               "or more) or Ed25519 keys")
    return None


def generate(algorithm="rsa"):
    """The file bytes of a new key: RSA 2048 bits (as ``dknewkey``) or Ed25519."""
    if algorithm == "ed25519":
        return _file_bytes(ed25519.Ed25519PrivateKey.generate())
    return _file_bytes(rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS))


def load(data):
    """``(algorithm, cryptography private key)`` of a key file's bytes."""
    text = data.decode("ascii").strip()
    if _SEED_RE.match(text):
        return "ed25519", ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(text))
    private = serialization.load_pem_private_key(data, password=None)
    return ("ed25519" if isinstance(private, ed25519.Ed25519PrivateKey) else "rsa"), private


def record(data):
    """The TXT value that publishes the public half of key file ``data``
    (RFC 6376 3.6.1; RFC 8463 for Ed25519)."""
    algorithm, private = load(data)
    public = private.public_key()
    if algorithm == "ed25519":
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k={algorithm}; p={base64.b64encode(raw).decode()}"
