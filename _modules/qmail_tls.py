"""
TLS for qmail-smtpd through tlswrapper: read and check the PEM file that
tlswrapper reads (private key, then certificate and chain), and assemble it
from a key and a certificate.

tlswrapper (Debian 12 and later) opens that file per connection, as root,
before it jails itself: a file replaced by rename is used from the next
session on, without a restart.
"""

import functools
import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "qmail_tls"


def __virtual__():
    if "qmail_tls.check_pair" in __utils__:
        return __virtualname__
    return (False, "the qmail_tls utils are not available (run saltutil.sync_all first)")


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _read(path, what):
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise CommandExecutionError(f"{what} {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandExecutionError(f"{what} {path} cannot be read: {exc}") from exc


def bundle(key=None, certificate=None, key_file=None, certificate_file=None, host=None):
    """
    The PEM text tlswrapper reads, from a private key and a certificate
    (PEM text, or files): the key, then the certificates. Checked first:
    the key is the certificate's and, with ``host``, the certificate is for
    it. Raises an error naming ``key`` or ``certificate`` otherwise.

    CLI Example::

        salt '*' qmail_tls.bundle key_file=/etc/qmail-tls/key.pem \\
            certificate_file=/etc/qmail-tls/cert.pem
    """
    if key is None:
        key = _read(_v("existing_file")(key_file, "key_file"), "the private key")
    if certificate is None:
        certificate = _read(_v("existing_file")(certificate_file, "certificate_file"),
                            "the certificate")
    if host is not None:
        host = _v("fqdn")(host, "host")
    check = __utils__["qmail_tls.check_pair"]
    if host:
        check(certificate, key, host, "qmail:tls")
    else:
        # No host to check: any name will do, the pair must still match.
        leaf = __utils__["qmail_tls.load_certificates"](certificate, "qmail:tls:certificate")[0]
        names = __utils__["qmail_tls.names"](leaf) or ["localhost"]
        check(certificate, key, names[0].replace("*", "x"), "qmail:tls")
    return __utils__["qmail_tls.bundle"](key, certificate)


def certificate(path=None):
    """
    What the PEM file at ``path`` (default: the formula's, which tlswrapper
    reads) presents to SMTP clients: the leaf certificate's DNS names, its
    SHA-256 fingerprint (as ``openssl x509 -fingerprint -sha256`` shows it),
    its expiry, and the file's mode and owner. Never the key.

    CLI Example::

        salt '*' qmail_tls.certificate /etc/qmail-tls/smtpd.pem
    """
    if path is None:
        path = __salt__["qmail_settings.show"]()["tls"]["files"]["pem"]
    path = _v("existing_file")(path, "path")
    text = _read(path, "the PEM file")
    try:
        certs = __utils__["qmail_tls.load_certificates"](
            "".join(b for b in _pem_blocks(text) if "CERTIFICATE" in b.split("\n", 1)[0]),
            path)
    except SaltInvocationError as exc:
        raise CommandExecutionError(str(exc)) from exc
    leaf = certs[0]
    st = os.stat(path)
    return {
        "path": path,
        "names": __utils__["qmail_tls.names"](leaf),
        "fingerprint": __utils__["qmail_tls.fingerprint"](leaf),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "chain": len(certs) - 1,
        "mode": oct(st.st_mode & 0o7777)[2:].zfill(4),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def _pem_blocks(text):
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("-----BEGIN "):
            current = [line]
        elif current:
            current.append(line)
            if line.startswith("-----END "):
                blocks.append("\n".join(current) + "\n")
                current = []
    return blocks
