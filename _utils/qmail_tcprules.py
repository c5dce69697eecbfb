"""
qmail-smtpd's tcprules source, as data (``__utils__``): which clients may
relay (``qmail:relay_clients``) in the syntax tcprules(1) compiles into
``tcp.smtp.cdb``. Pure: nothing here reads the host or the pillar.

The loader gives ``_utils`` modules no ``__utils__``: the callers pass
``plain``, the loader's ``qmail_validate.plain``.
"""


def tcp_rules(relay_clients, plain, key="qmail:relay_clients", ipv6=None):
    """
    Turn ``relay_clients`` (IPv4 addresses or networks in CIDR notation;
    whole IPv6 addresses when ``ipv6``, the check of one entry, is given:
    see ``qmail_ipv6.relay_address``) into the lines of a tcprules source for qmail-smtpd: one
    ``<prefix>:allow,RELAYCLIENT=""`` per client network, then ``:allow``
    for everyone else (who may only send to ``rcpthosts``). tcprules knows
    dotted prefixes (``10.1.``) and ranges in the last octet
    (``10.1.2.0-127``), so other prefix lengths are spelt with those.
    """
    prefixes = []
    for net in plain("relay_networks")(relay_clients, key, ipv6):
        for prefix in _tcprules_prefixes(net):
            if prefix not in prefixes:
                prefixes.append(prefix)
    return [f'{prefix}:allow,RELAYCLIENT=""' for prefix in prefixes] + [":allow"]


def _tcprules_prefixes(net):
    """The tcprules spellings of one IPv4 network (an IPv6 address comes
    spelt already)."""
    if isinstance(net, str):
        return [net]
    octets = str(net.network_address).split(".")
    length = net.prefixlen
    if length == 32:
        return [str(net.network_address)]
    if length % 8 == 0:
        return [".".join(octets[: length // 8]) + "."]
    if length > 24:
        last = int(octets[3])
        return [".".join(octets[:3]) + f".{last}-{last + net.num_addresses - 1}"]
    # Split into the next whole-octet networks (/16 or /24).
    whole = (length // 8 + 1) * 8
    return [p for sub in net.subnets(new_prefix=whole) for p in _tcprules_prefixes(sub)]
