"""The client's address behind a reverse proxy: one function, used by the request middleware
(rfr.middleware.TrustedProxyMiddleware), the audit trail's IP and the sign-in lockout (audit.services.client_ip).

Forwarding headers are written by whoever sends the request, so they are believed only from a peer listed in
`RFR_TRUSTED_PROXIES` (addresses or CIDR networks; empty by default: no proxy is trusted).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache

from django.conf import settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def trusted_proxy_networks() -> tuple[IPNetwork, ...]:
    return _networks(tuple(settings.RFR_TRUSTED_PROXIES))


def ip_address_of(raw: str) -> IPAddress | None:
    raw = raw.strip()
    if raw.startswith("[") and "]" in raw:  # "[::1]:443"
        raw = raw[1 : raw.index("]")]
    elif raw.count(":") == 1:  # "203.0.113.7:51234"
        raw = raw.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def client_address(meta: Mapping[str, object], networks: tuple[IPNetwork, ...] | None = None) -> str:
    """The client's address for a request's META: the peer, unless the peer is a trusted proxy, in which case
    the nearest address in X-Forwarded-For (read from the right) that is not itself a trusted proxy, or
    X-Real-IP without X-Forwarded-For. An unreadable entry stops the walk at the last hop that vouched for it."""
    networks = trusted_proxy_networks() if networks is None else networks
    peer_raw = str(meta.get("REMOTE_ADDR") or "")
    peer = ip_address_of(peer_raw)
    if peer is None or not networks or not is_trusted(peer, networks):
        return peer_raw
    forwarded = str(meta.get("HTTP_X_FORWARDED_FOR") or "")
    hops = [hop for hop in (part.strip() for part in forwarded.split(",")) if hop]
    if not hops and meta.get("HTTP_X_REAL_IP"):
        hops = [str(meta["HTTP_X_REAL_IP"])]
    client = peer
    for hop in reversed(hops):
        address = ip_address_of(hop)
        if address is None:
            break
        client = address
        if not is_trusted(address, networks):
            break
    return str(client)
