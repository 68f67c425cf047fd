"""Client addresses: which peers are trusted proxies, and who the client is behind them.

Below both the audit trail (which records and rations by address) and the identity layer
(which believes identity headers only from a trusted proxy), so neither imports the other for it.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXY_CIDRS has an invalid entry: {exc}") from None


def trusted_networks() -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXY_CIDRS parsed. An empty list trusts nobody."""
    return _networks(tuple(settings.TRUSTED_PROXY_CIDRS))


def parse_ip(address: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    # An IPv4 client seen through a dual-stack socket arrives as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_trusted_proxy(address: str) -> bool:
    ip = parse_ip(address)
    return ip is not None and any(ip in network for network in trusted_networks())


def is_loopback(address: str) -> bool:
    ip = parse_ip(address)
    return ip is not None and ip.is_loopback


def client_address(request: HttpRequest) -> str | None:
    """The client's address as the trusted proxy reports it, else the TCP peer.

    X-Forwarded-For is read only when the peer is a trusted proxy, and then from the right:
    the right-most hop that is not itself a trusted proxy is the first address no attacker
    could have written (everything to its left is client-supplied).
    """
    peer = request.META.get("REMOTE_ADDR", "")
    if not is_trusted_proxy(peer):
        ip = parse_ip(peer)
        return str(ip) if ip else None
    chosen = parse_ip(peer)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        ip = parse_ip(hop)
        if ip is None:
            break  # garbage from here leftwards was written by the client
        chosen = ip
        if not is_trusted_proxy(str(ip)):
            break
    return str(chosen) if chosen else None
