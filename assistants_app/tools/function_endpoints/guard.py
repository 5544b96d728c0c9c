"""Where a function endpoint may connect: public addresses, and the private ones staff allow.

The check happens where the socket is opened, not before the request: an httpcore network backend
resolves the host itself, refuses it if ANY of its addresses is not allowed, and connects to an
address it checked. httpcore still sends the URL's host name as the Host header and the TLS SNI
(and verifies the certificate against it), so pinning changes nothing else, and a DNS answer that
changes between a check and the connection (DNS rebinding) has no second lookup to hide in. Every
redirect hop opens its connection through the same backend.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore2
import httpx2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedAddress(Exception):
    """The endpoint's host is, or resolves to, an address that is not public and not allowed."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, which is not a public address")
        self.host = host
        self.address = address


def _embedded_v4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64), else `ip`."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public(ip: IPAddress) -> bool:
    """Routable on the internet: not loopback, private, link-local (cloud metadata services live at
    169.254.169.254), shared (100.64.0.0/10), documentation, reserved, multicast or unspecified."""
    inner = _embedded_v4(ip)
    return all(a.is_global and not a.is_multicast for a in {ip, inner})


@dataclass(frozen=True)
class Policy:
    """FUNCTION_ENDPOINTS_ALLOWED_PRIVATE: host names allowed whatever they resolve to, and
    addresses/networks allowed for any host name."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def allows(self, host: str, ip: IPAddress) -> bool:
        if is_public(ip):
            return True
        if host.lower().rstrip(".") in self.hosts:
            return True
        return any(ip.version == net.version and ip in net for net in self.networks)


def parse_allow_list(raw: str) -> Policy:
    """The policy for a FUNCTION_ENDPOINTS_ALLOWED_PRIVATE value; ValueError names a bad entry."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in (e.strip() for e in (raw or "").split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if (
            "/" in entry
            or ":" in entry
            or not all(
                part and len(part) <= 63 and all(c.isalnum() or c in "-_" for c in part)
                for part in entry.rstrip(".").split(".")
            )
        ):
            raise ValueError(f"{entry!r} is neither a host name nor an address or network (CIDR)")
        hosts.add(entry.lower().rstrip("."))
    return Policy(frozenset(hosts), tuple(networks))


@functools.lru_cache(maxsize=8)
def policy_for(raw: str) -> Policy:
    return parse_allow_list(raw)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` (what getaddrinfo answers), in its order. Tests replace this."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_addresses(host: str, port: int, policy: Policy) -> list[str]:
    """The addresses to connect to for `host`; RefusedAddress if any of them is not allowed (a host
    with one public and one private address is refused: which one a client gets is the DNS's say)."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise httpcore2.ConnectError(f"could not resolve {host}: {exc}") from exc
    if not addresses:
        raise httpcore2.ConnectError(f"{host} has no address")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not policy.allows(host, ip):
            raise RefusedAddress(host, address)
    return addresses


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses `policy` allows (resolved here)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        addresses = await checked_addresses(host, port, self.policy)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("function endpoints connect over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the trust store costs milliseconds: once per process, not per call.
    return httpx2.create_ssl_context(trust_env=False)


def transport(policy: Policy) -> httpx2.AsyncHTTPTransport:
    """An httpx transport whose connections go through GuardedBackend. No proxies (trust_env off):
    a proxy would connect on our behalf, past the check."""
    # verify=<context>: the transport would otherwise load a trust store of its own (~60 ms) only for
    # the pool replaced below.
    guarded = httpx2.AsyncHTTPTransport(verify=_ssl_context(), trust_env=False)
    # httpx has no public parameter for its pool's network backend; the pool itself is httpcore's
    # public API. tests/tools/function_endpoints proves the backend is the one connecting.
    guarded._pool = httpcore2.AsyncConnectionPool(
        ssl_context=_ssl_context(), max_connections=4, network_backend=GuardedBackend(policy)
    )
    return guarded
