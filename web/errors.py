"""The web package's typed errors."""

from __future__ import annotations

__all__ = ["ApiError", "BadApiRequestError", "ClusterError", "ProxyHeaderError", "WebError"]


class WebError(Exception):
    """Base of the web package's errors."""


class ClusterError(WebError):
    """``chatter cluster`` could not start, or lost a part it cannot run without."""


class ProxyHeaderError(WebError):
    """A trusted proxy's connection did not begin with a valid PROXY header."""


class ApiError(WebError):
    """A JSON endpoint refuses a request: answered with `status` and a JSON
    error whose message is this exception's text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BadApiRequestError(ApiError):
    """An API request's body or arguments are not what the endpoint takes (400)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)
