"""Behind a proxy: who the client is, and how it reached us, from the proxy's headers.

uvicorn's rule (--proxy-headers, --forwarded-allow-ips): the headers are believed only when
the peer that connected is a trusted proxy. `X-Forwarded-For` (or `Forwarded`'s `for=`,
RFC 7239) lists the hops, the client first; each proxy appends the peer it saw. Reading
from the right, every trusted hop is skipped and the first untrusted one is the client: a
client that puts its own forged address first gains nothing, since it is never reached.
`X-Forwarded-Proto` (`proto=`) sets the scheme. A Unix socket's peer is trusted: only a
process on this host can connect to one.

Whether a connection's peer is trusted is decided once, when it connects; a request from an
untrusted peer pays nothing.
"""
from __future__ import annotations

import ipaddress
import typing

from ..datastructures import Address

if typing.TYPE_CHECKING:
    from ..request import Request

__all__ = ["TrustedProxies"]

_Network = typing.Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_SCHEMES = frozenset({"http", "https", "ws", "wss"})


class TrustedProxies:
    """The peers --forwarded-allow-ips names: addresses, networks, or `*` for any."""

    def __init__(self, entries: typing.Iterable[str]) -> None:
        self.any = False
        self.networks: list[_Network] = []
        self.names: set[str] = set()  # literals that are not addresses (e.g. "unix:")
        for entry in entries:
            entry = entry.strip()
            if entry == "*":
                self.any = True
            elif entry:
                try:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    self.names.add(entry)

    def __contains__(self, host: str) -> bool:
        if self.any or host in self.names:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client_of(self, hops: list[str]) -> str | None:
        """The client in a list of hops (first the client, last the nearest proxy's peer)."""
        for hop in reversed(hops):
            if hop not in self:
                return hop
        return hops[0] if hops else None

    def apply(self, request: "Request", header_map: dict[str, str]) -> None:
        """Set `request.client` and `request.scheme` from the headers of a trusted peer."""
        forwarded = header_map.get("forwarded")
        if forwarded is not None:
            hops, proto = _parse_forwarded(forwarded)
        else:
            hops, proto = [], header_map.get("x-forwarded-proto")
            chain = header_map.get("x-forwarded-for")
            if chain is not None:
                hops = [_host_of(hop.strip()) for hop in chain.split(",") if hop.strip()]
        if proto is not None:
            proto = proto.split(",")[-1].strip().lower()  # the hop nearest us
            if proto in _SCHEMES:
                if request.scheme in ("ws", "wss"):
                    proto = "wss" if proto in ("https", "wss") else "ws"
                request.scheme = proto
        if hops:
            client = self.client_of(hops)
            if client is not None:
                # The port a proxy saw is not ours to know: 0, as uvicorn reports it.
                request.client = Address(_host_of(client), 0)


def _host_of(node: str) -> str:
    """`[2001:db8::1]:4711` -> `2001:db8::1`; `192.0.2.1:80` -> `192.0.2.1`."""
    if node.startswith("["):
        return node[1:node.find("]")] if "]" in node else node
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node


def _parse_forwarded(value: str) -> tuple[list[str], str | None]:
    """RFC 7239: `for=192.0.2.60;proto=http, for="[2001:db8::1]"` -> hops and the last proto."""
    hops: list[str] = []
    proto = None
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, token = pair.partition("=")
            name, token = name.strip().lower(), token.strip().strip('"')
            if name == "for" and token:
                hops.append(_host_of(token))
            elif name == "proto" and token:
                proto = token
    return hops, proto
