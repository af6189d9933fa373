"""The PROXY protocol (versions 1 and 2), as a load balancer such as haproxy
(``send-proxy`` / ``send-proxy-v2``) sends it at the start of a connection to
name the client it is forwarding. See haproxy's doc/proxy-protocol.txt.

Only a trusted proxy's connection is read this way (`web.listener`); anyone
else's first bytes are HTTP.
"""

from __future__ import annotations

import ipaddress
import struct

from tornado.iostream import IOStream, UnsatisfiableReadError

from web.errors import ProxyHeaderError

__all__ = [
    "V2_SIGNATURE",
    "ProxyHeaderError",
    "parse_v1",
    "parse_v2_addresses",
    "read_proxy_header",
]

V1_MAX_BYTES = 107
"""The longest version 1 line, CRLF included (the specification's bound)."""
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_MAX_ADDRESS_BYTES = 536
"""The most address and TLV bytes a version 2 header may carry here: the
specification's recommended receive size less the 16 fixed bytes."""

Address = tuple[str, int]


async def read_proxy_header(stream: IOStream) -> Address | None:
    """Read the header from `stream`: the client's (address, port), or None
    when the proxy speaks for itself (v1 ``UNKNOWN``, v2 ``LOCAL``, or an
    address family other than TCP over IPv4 or IPv6)."""
    start = await stream.read_bytes(5)
    if start == b"PROXY":
        try:
            rest = await stream.read_until(b"\r\n", max_bytes=V1_MAX_BYTES - 5)
        except UnsatisfiableReadError:
            raise ProxyHeaderError("a PROXY v1 line longer than 107 bytes") from None
        return parse_v1(start + rest)
    if start == V2_SIGNATURE[:5]:
        fixed = start + await stream.read_bytes(11)
        if fixed[:12] != V2_SIGNATURE:
            raise ProxyHeaderError("not a PROXY v2 signature")
        version_command, family, length = struct.unpack("!BBH", fixed[12:16])
        if version_command >> 4 != 2:
            raise ProxyHeaderError(f"PROXY v2 with version {version_command >> 4}")
        if length > V2_MAX_ADDRESS_BYTES:
            raise ProxyHeaderError(f"a PROXY v2 header of {length} address bytes")
        body = await stream.read_bytes(length) if length else b""
        command = version_command & 0x0F
        if command == 0x0:  # LOCAL: the proxy's own connection (a health check)
            return None
        if command != 0x1:
            raise ProxyHeaderError(f"PROXY v2 with command {command}")
        return parse_v2_addresses(family, body)
    raise ProxyHeaderError("a trusted proxy's connection must begin with a PROXY header")


def parse_v1(line: bytes) -> Address | None:
    """The client named by a version 1 line (``PROXY TCP4 src dst sport dport``)."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("a PROXY v1 line that is not ASCII") from None
    if not text.endswith("\r\n"):
        raise ProxyHeaderError("a PROXY v1 line must end with CRLF")
    parts = text[:-2].split(" ")
    if parts[:2] == ["PROXY", "UNKNOWN"]:
        return None
    if len(parts) != 6 or parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"a malformed PROXY v1 line: {text[:-2]!r}")
    _, family, source, _destination, source_port, _destination_port = parts
    try:
        address = ipaddress.ip_address(source)
        port = int(source_port)
    except ValueError:
        raise ProxyHeaderError(f"a malformed PROXY v1 address: {text[:-2]!r}") from None
    if (address.version == 4) != (family == "TCP4") or not 0 <= port <= 65535:
        raise ProxyHeaderError(f"a malformed PROXY v1 address: {text[:-2]!r}")
    return str(address), port


_V2_FAMILIES: dict[int, tuple[str, int, type[ipaddress.IPv4Address | ipaddress.IPv6Address]]] = {
    0x11: ("TCP4", 4, ipaddress.IPv4Address),
    0x21: ("TCP6", 16, ipaddress.IPv6Address),
}
"""The version 2 families that name a client: label, address size, address type."""


def parse_v2_addresses(family: int, body: bytes) -> Address | None:
    """The client named by a version 2 address block; None for families other
    than TCP over IPv4 (0x11) and IPv6 (0x21), which name no usable address."""
    if family not in _V2_FAMILIES:
        return None
    label, size, address = _V2_FAMILIES[family]
    # source address, destination address, source port, destination port
    if len(body) < 2 * size + 4:
        raise ProxyHeaderError(f"a PROXY v2 {label} block shorter than {2 * size + 4} bytes")
    (port,) = struct.unpack("!H", body[2 * size : 2 * size + 2])
    return str(address(body[:size])), port
