"""The PROXY protocol parser and the trusted-proxy rule for X-Forwarded-For."""

from __future__ import annotations

import socket
import struct

import pytest

from web.errors import ProxyHeaderError
from web.listener import TrustedProxies
from web.proxy_protocol import V2_SIGNATURE, parse_v1, parse_v2_addresses


def test_a_v1_line_names_the_source_address_and_port() -> None:
    assert parse_v1(b"PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n") == ("192.0.2.1", 56324)
    assert parse_v1(b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n") == ("2001:db8::1", 1)


def test_a_v1_unknown_line_names_nobody() -> None:
    assert parse_v1(b"PROXY UNKNOWN\r\n") is None
    assert parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") is None


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 192.0.2.1 10.0.0.1 56324\r\n",
        b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 10.0.0.1 99999 2\r\n",
        b"PROXY UDP4 192.0.2.1 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 10.0.0.1 1 2\n",
        b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 \xff 10.0.0.1 1 2\r\n",
    ],
)
def test_a_malformed_v1_line_is_refused(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_v1(line)


def test_v2_address_blocks() -> None:
    tcp4 = socket.inet_aton("192.0.2.7") + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 7, 8)
    assert parse_v2_addresses(0x11, tcp4) == ("192.0.2.7", 7)
    tcp6 = (
        socket.inet_pton(socket.AF_INET6, "2001:db8::7")
        + socket.inet_pton(socket.AF_INET6, "::1")
        + struct.pack("!HH", 9, 10)
    )
    assert parse_v2_addresses(0x21, tcp6) == ("2001:db8::7", 9)
    assert parse_v2_addresses(0x31, b"/tmp/socket") is None  # a UNIX socket names no address
    with pytest.raises(ProxyHeaderError):
        parse_v2_addresses(0x11, tcp4[:8])
    assert len(V2_SIGNATURE) == 12


def test_only_a_trusted_peer_names_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/24", "::1/128"])
    assert proxies.client_of("192.0.2.1", "198.51.100.1") == "192.0.2.1"
    assert proxies.client_of("10.0.0.5", "198.51.100.1") == "198.51.100.1"
    assert proxies.client_of("10.0.0.5", None) == "10.0.0.5"


def test_the_rightmost_untrusted_forwarded_address_is_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/24"])
    # A client may forge entries on the left; each proxy appends what it saw.
    assert proxies.client_of("10.0.0.5", "6.6.6.6, 198.51.100.1, 10.0.0.9") == "198.51.100.1"
    assert proxies.client_of("10.0.0.5", "10.0.0.8, 10.0.0.9") == "10.0.0.5"
    assert proxies.client_of("10.0.0.5", "198.51.100.1, garbage") == "10.0.0.5"
    assert proxies.client_of("10.0.0.5", " 2001:DB8::1 ") == "2001:db8::1"


def test_no_trusted_proxies_trusts_nobody() -> None:
    proxies = TrustedProxies([])
    assert not proxies
    assert "127.0.0.1" not in proxies
    assert proxies.client_of("127.0.0.1", "198.51.100.1") == "127.0.0.1"
