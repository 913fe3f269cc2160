"""Where a push may go: public addresses only, checked when stored and again before each send.

A push endpoint is a URL any logged-in user chooses, and every node POSTs to it: without this
check it is a server-side request forgery (the cloud's metadata service, an admin page on the
private network, Redis on localhost), with the 404/410 deletion as the answer channel. So a host
must not be, or resolve to, a non-global address; each send goes to an address checked just
before, pinned (the name is resolved once, and that address is the one connected to, so DNS cannot
answer the check one way and the connection another), and redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

__all__ = ["Refused", "Resolved", "non_global", "resolve"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(ValueError):
    """The endpoint's host is, or resolves to, an address a push may not go to."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """The address a send connects to, checked; `host` stays the URL's (TLS name, Host header)."""

    host: str
    address: str


def non_global(address: Address) -> bool:
    """True for loopback, private, link-local, multicast, reserved and every other non-public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and non_global(embedded):
            return True
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_private
    )


def _literal(host: str) -> Address | None:
    """The address a host names by itself, in any form the C resolver accepts.

    `2130706433`, `127.1`, `0x7f.1` and `0177.0.0.1` all mean 127.0.0.1 to inet_aton (and so to
    getaddrinfo and every HTTP client), though ipaddress reads none of them.
    """
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


async def resolve(host: str, port: int, *, dns_timeout: float, allow_private: bool) -> Resolved:
    """The address to send to; raises Refused (non-global), or OSError/TimeoutError (no answer).

    The lookup runs in the loop's resolver thread, so it never blocks the event loop, and is
    bounded by `dns_timeout`. Every address the name has must be global: a name with one private
    address among public ones could be connected to that one.
    """
    literal = _literal(host)
    if literal is not None:
        if non_global(literal) and not allow_private:
            raise Refused(f"{host} is a non-global address ({literal})")
        return Resolved(host, str(literal))
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(dns_timeout):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
    if not addresses:
        raise OSError(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            if non_global(address):
                raise Refused(f"{host} resolves to a non-global address ({address})")
    return Resolved(host, str(addresses[0]))
