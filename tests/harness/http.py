"""HTTP requests to a server under test, whatever their status: `request` from
plain code (it blocks), `fetch` from a coroutine."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import tornado.httpclient

from tests.harness.waiting import TIMEOUT_S

__all__ = ["Answer", "fetch", "healthz", "request"]


@dataclass(frozen=True)
class Answer:
    """A response: its status (0 when none came: refused, reset, timed out),
    headers (names in lower case) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


def request(
    url: str,
    method: str = "GET",
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = TIMEOUT_S,
) -> Answer:
    """One request; a dict `body` goes as JSON."""
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    sent = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(sent, timeout=timeout_s) as response:
            return Answer(response.status, _lower(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, _lower(error.headers.items()), error.read())
    except OSError:
        return Answer(0, {}, b"")


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def healthz(base_url: str, timeout_s: float = TIMEOUT_S) -> tuple[int, dict[str, Any]]:
    """``GET /healthz``: the status and the JSON body (0 and {} when no answer came)."""
    answer = request(base_url + "/healthz", timeout_s=timeout_s)
    return answer.status, answer.json() if answer.status else {}


async def fetch(url: str, method: str = "GET", **options: Any) -> tornado.httpclient.HTTPResponse:
    """One request from a coroutine (Tornado's `HTTPRequest` options), whatever its status."""
    client = tornado.httpclient.AsyncHTTPClient()
    return await client.fetch(
        url,
        method=method,
        raise_error=False,
        request_timeout=TIMEOUT_S,
        allow_nonstandard_methods=True,
        **options,
    )
