"""The pages over plain HTTP: served, with the security headers, and no inline script."""

from __future__ import annotations

import re

import pytest

from tests.harness.http import request
from tests.harness.server import ChatServer
from web.pages import CONTENT_SECURITY_POLICY


def fetch(url: str) -> tuple[int, dict[str, str], str]:
    answer = request(url)
    return answer.status, answer.headers, answer.body.decode()


@pytest.mark.parametrize("path", ["/", "/chat", "/chat?name=ann"])
def test_pages_carry_a_strict_content_security_policy(server: ChatServer, path: str) -> None:
    status, headers, html = fetch(server.url + path)
    assert status == 200
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    policy = {part.split()[0]: part.split()[1:] for part in CONTENT_SECURITY_POLICY.split("; ")}
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'none'"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    # Every script is a file of this origin: none inline, none from another host.
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S)
    assert scripts
    assert all(body.strip() == "" for body in scripts)
    sources = re.findall(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["']([^"']+)""", html)
    assert sources
    assert all(source.startswith("/") for source in sources)


def test_static_files_carry_the_security_headers(server: ChatServer) -> None:
    status, headers, body = fetch(server.url + "/static/js/room.js")
    assert status == 200
    assert "javascript" in headers["content-type"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "innerHTML" not in body  # text only, by construction
