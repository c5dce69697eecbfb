"""
IPv6 on the spool (``__utils__``, issue 22): what ``qmail:ipv6`` means for
qmail-smtpd under tcpserver, and IPv6 entries of ``qmail:relay_clients``.

Debian's ``ucspi-tcp-ipv6`` (it replaces ``ucspi-tcp``) gives a tcpserver
that listens on IPv4 and IPv6 for host ``0`` (``0.0.0.0``: IPv4 only; it
cannot parse ``::``) and sets ``TCPREMOTEIP`` of an IPv6 client to its own
spelling of the address (below). tcprules looks a client up by that text
and by its prefixes cut at ``:``; since zero groups are compressed, a
prefix matches some addresses of a network and not others, so only whole
addresses are accepted, in tcpserver's spelling. inetd's tcp-env, and
qmail-remote, are IPv4 only: outbound delivery stays IPv4.

Pure functions of their arguments: nothing here reads the pillar or the host.
"""

import ipaddress

from salt.exceptions import SaltInvocationError

# tcpserver's host argument: "0" is IPv4 and IPv6 with ucspi-tcp-ipv6, IPv4
# with ucspi-tcp; "0.0.0.0" is IPv4 with either.
LISTEN = {True: "0", False: "0.0.0.0"}


def _fail(key, message):
    raise SaltInvocationError(f"{key}: {message}")


def tcpserver_form(address):
    """
    ``address`` (an IPv6 address, text or ``ipaddress.IPv6Address``) as
    ucspi-tcp-ipv6's tcpserver writes it in ``TCPREMOTEIP`` (its
    ``ip6_fmt``): lowercase hex without leading zeros, the longest run of
    zero groups (the first of equal ones) written ``::`` even when it is a
    single group, where RFC 5952 (and Python) keep a lone ``0``:
    ``2001:db8:0:1:1:1:1:1`` arrives as ``2001:db8::1:1:1:1:1``.
    """
    packed = ipaddress.IPv6Address(address).packed
    groups = [int.from_bytes(packed[i:i + 2], "big") for i in range(0, 16, 2)]
    best_at, best_len, at = -1, 0, None
    for i, group in enumerate(groups + [1]):  # a sentinel ends a trailing run
        if group == 0 and at is None:
            at = i
        elif group != 0 and at is not None:
            if i - at > best_len:
                best_at, best_len = at, i - at
            at = None
    if best_len == 0:
        return ":".join(f"{g:x}" for g in groups)
    head = ":".join(f"{g:x}" for g in groups[:best_at])
    tail = ":".join(f"{g:x}" for g in groups[best_at + best_len:])
    return f"{head}::{tail}"


def relay_address(net, entry, key, enabled):
    """
    The tcprules address of one IPv6 entry ``entry`` of ``qmail:relay_clients``
    (``net``: it parsed as this ``ipaddress.IPv6Network``), named ``key`` in
    errors. Refused: any entry while ``qmail:ipv6`` is off (no IPv6 client
    reaches qmail-smtpd then: it could never match), a network or prefix
    (tcprules cannot match one reliably), IPv4-mapped addresses (IPv4
    clients arrive in IPv4 form), zones (``%eth0``), the unspecified
    address, and an address whose spelling ends in ``::`` (tcprules reads a
    rule ending in ``:`` as a prefix: ``fd00::`` matches ``fd00::5``).
    """
    if not enabled:
        _fail(key, f"{entry!r} is an IPv6 entry, but qmail:ipv6 is off: no IPv6 client "
                   "reaches qmail-smtpd, so it would never match")
    if net.prefixlen != 128:
        _fail(key, f"{entry!r} is an IPv6 network: tcpserver compresses zero groups, so "
                   "tcprules prefixes match only some of its addresses; list whole IPv6 "
                   "addresses (each a /128)")
    address = net.network_address
    if address.ipv4_mapped is not None:
        _fail(key, f"{entry!r} is an IPv4-mapped address: IPv4 clients arrive in IPv4 form; "
                   f"list {address.ipv4_mapped} instead")
    if getattr(address, "scope_id", None):
        _fail(key, f"{entry!r} has a zone (%...): tcpserver writes the address without "
                   "one; list the address alone")
    if address.is_unspecified:
        _fail(key, f"{entry!r} is the unspecified address, no client's")
    seen = tcpserver_form(address)
    if seen.endswith(":"):
        # tcprules takes a rule ending in ":" as a prefix: "fd00::" would
        # let every fd00::<x> relay.
        _fail(key, f"{entry!r} arrives as {seen!r}, which tcprules takes as a prefix of "
                   f"other addresses ({seen}1 ...): it would widen relaying")
    return seen


def service_settings(enabled, mode, package, key="qmail:ipv6"):
    """
    What ``qmail:ipv6`` (``enabled``) gives qmail.service for smtpd mode
    ``mode`` (``tcpserver``, ``inetd`` or ``off`` on a client) and the
    OS's ``lookup:service:ipv6_package``: ``ipv6`` (tcpserver listens on
    IPv6 too), ``ipv6_package`` (to install; empty: none) and ``listen``
    (tcpserver's host argument). Refused: a non-boolean, inetd mode with
    IPv6 (tcp-env is IPv4 only), and an OS with no IPv6 tcpserver package.
    """
    if not isinstance(enabled, bool):
        _fail(key, f"expected true or false, got {enabled!r}")
    if enabled and mode == "inetd":
        _fail(key, "inetd runs qmail-smtpd through tcp-env, which is IPv4 only: set "
                   "qmail:service:smtpd: tcpserver for IPv6")
    active = enabled and mode == "tcpserver"
    if active and not package:
        _fail(key, "this OS has no IPv6 tcpserver package known to the formula "
                   "(qmail:lookup:service:ipv6_package is empty)")
    return {"ipv6": active, "ipv6_package": package if active else "",
            "listen": LISTEN[active]}
