"""Which addresses the server may connect to on a user's behalf (task callbacks, issue 7 D10).

A CallbackUrl is chosen by whoever creates the task, so without a policy the server would POST, from inside the
operator's network, to its own loopback services or the cloud metadata address. The operator lists the networks
callbacks may reach (`serve --callback-allow`, default everything); within that, loopback, link-local,
unspecified and multicast addresses stay denied unless a listed network lies inside them.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_ALL = ("0.0.0.0/0", "::/0")
"""The default `--callback-allow`: every address except the denied ranges below."""
DENIED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8", "::1/128",  # loopback
        "169.254.0.0/16", "fe80::/10",  # link-local, with the cloud metadata address 169.254.169.254
        "0.0.0.0/8", "::/128",  # unspecified: Linux connects 0.0.0.0 to this host
        "224.0.0.0/4", "ff00::/8",  # multicast
    )
)  # fmt: skip
"""Issue 7 D10. Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are not denied: a self-hosted team's
receivers usually live there; an operator who wants them shut lists the networks callbacks may reach instead."""


def parse_networks(text: str | Iterable[str]) -> tuple[str, ...]:
    """`CIDR[,CIDR...]` (or a list of them) in canonical form; ValueError naming the first bad one.

    Host bits are allowed (`10.1.2.3/8` means `10.0.0.0/8`); a bare address is a single host.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    networks: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not a network in CIDR form (e.g. 10.0.0.0/8, 127.0.0.1/32)") from None
    if not networks:
        raise ValueError("no network given (e.g. 10.0.0.0/8)")
    return tuple(networks)


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4 address written in IPv6 (`::ffff:127.0.0.1`) is that IPv4 address: connecting to it reaches it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class AddressPolicy:
    """The networks callbacks may reach (see the module docstring)."""

    allowed: tuple[IPNetwork, ...]

    def permits(self, address: IPAddress) -> bool:
        """Whether the server may connect to `address`."""
        address = _plain(address)
        covering = [n for n in self.allowed if address in n]
        if not covering:
            return False
        # A denied range is opened only by a listed network inside it (127.0.0.0/8 opens loopback;
        # 0.0.0.0/0 does not open the metadata address).
        return all(any(n.subnet_of(d) for n in covering if n.version == d.version) for d in DENIED if address in d)  # type: ignore[arg-type]

    def literal_denied(self, host: str) -> bool:
        """Whether `host` (a URL's host name) is a numeric address this policy refuses.

        Numeric forms are parsed as the resolver would (`127.1`, `2130706433`, `[::ffff:7f00:1]`), without
        any DNS lookup; a name answers False here and is checked at delivery, on the address it resolves to.
        """
        address = numeric_address(host)
        return address is not None and not self.permits(address)


def numeric_address(host: str) -> IPAddress | None:
    """The address `host` spells numerically, in any form the C resolver accepts; None for a name."""
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])


@functools.lru_cache(maxsize=8)
def address_policy(networks: tuple[str, ...]) -> AddressPolicy:
    """The policy for `Settings.callback_allow` (cached: built once per distinct setting)."""
    return AddressPolicy(tuple(ipaddress.ip_network(n, strict=False) for n in parse_networks(networks)))
