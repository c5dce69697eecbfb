"""Certificates for the TLS tests: a throwaway CA, server certificates signed
by it (or self-signed), and the bad variants the formula must refuse. Made
with Python's cryptography on this machine, in memory."""

from __future__ import annotations

import datetime
import hashlib
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID


def key_pem(key, password: bytes | None = None) -> str:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption).decode()


def cert_pem(cert) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def new_key(kind: str = "ec"):
    """A key: ``ec`` (P-256), ``rsa`` (2048), and the ones BearSSL refuses:
    ``rsa1024``, ``secp256k1``, ``ed25519``."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "secp256k1":
        return ec.generate_private_key(ec.SECP256K1())
    return ec.generate_private_key(ec.SECP256R1())


def _window(days: int, expired: bool, not_yet: bool):
    """(not before, not after): valid now, expired a day ago, or valid from
    tomorrow."""
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        return now - datetime.timedelta(days=days + 2), now - datetime.timedelta(days=1)
    if not_yet:
        return now + datetime.timedelta(days=1), now + datetime.timedelta(days=days)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CA:
    """A certificate authority that lives as long as the test run."""

    def __init__(self, name: str = "qmail-lab test CA", expired: bool = False,
                 not_yet: bool = False):
        self.key = new_key("ec")
        start, end = _window(30, expired, not_yet)
        self.cert = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256()))

    @property
    def pem(self) -> str:
        return cert_pem(self.cert)

    def issue(self, host: str, key=None, days: int = 30, expired: bool = False,
              not_yet: bool = False, usages=None):
        """(certificate PEM, key PEM) for ``host``, signed by this CA;
        ``usages``: the extendedKeyUsage OIDs (none: no such extension)."""
        key = key or new_key("ec")
        start, end = _window(days, expired, not_yet)
        builder = (
            x509.CertificateBuilder().subject_name(_name(host)).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if usages is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        return cert_pem(builder.sign(self.key, hashes.SHA256())), key_pem(key)


def fingerprint_der(der: bytes) -> str:
    """SHA-256 of a DER certificate as ``AB:CD:...`` (qmail_tls.certificate's form)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2))


def fingerprint_pem(pem: str) -> str:
    return fingerprint_der(ssl.PEM_cert_to_DER_cert(pem))
