"""tidings.channels.push.endpoints: which addresses a push may go to, in every spelling."""

from __future__ import annotations

import ipaddress

import pytest

from tidings.channels.push.endpoints import Refused, non_global, resolve

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.31.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0",  # noqa: S104 (an address checked, never bound)
        "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
        "::1", "::", "fe80::1", "fd00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
        "64:ff9b::a00:1", "2002:7f00:1::",
    ],
)  # fmt: skip
def test_non_global_addresses(address: str) -> None:
    assert non_global(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "142.250.185.74", "2001:4860:4860::8888"])
def test_public_addresses(address: str) -> None:
    assert not non_global(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("host", "meant"),
    [
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("167772161", "10.0.0.1"),
        ("[::1]", "::1"),
        ("localhost", "127.0.0.1"),
    ],
)
async def test_every_spelling_of_an_inward_host_is_refused(host: str, meant: str) -> None:
    with pytest.raises(Refused, match="non-global") as info:
        await resolve(host, 443, dns_timeout=2, allow_private=False)
    assert meant in str(info.value)
    # Admitted only when asked for, and then to the address it means.
    resolved = await resolve(host, 443, dns_timeout=2, allow_private=True)
    assert resolved.address == meant


async def test_a_public_literal_is_sent_to_as_is() -> None:
    resolved = await resolve("8.8.8.8", 443, dns_timeout=2, allow_private=False)
    assert resolved.address == "8.8.8.8"
