"""The base of every JSON endpoint: errors are JSON too, always.

An endpoint raises `ApiError` (with a status) or `BadApiRequestError` (400);
`write_error` turns either, Tornado's own refusals, and anything unexpected, into
``{"error": code, "message": text}`` with that status, never an HTML page and
never a traceback. `json_body` reads a request body that must be a JSON object.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import tornado.web

from web.errors import ApiError, BadApiRequestError

__all__ = ["ERROR_CODES", "MAX_JSON_BODY_BYTES", "JsonHandler", "NotFoundJson"]

MAX_JSON_BODY_BYTES = 64 * 1024
"""The largest JSON body an endpoint reads: the API's bodies are a few bytes."""

ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "bad_request",
    503: "unavailable",
}
"""The ``error`` word for each status; any other status says ``internal``."""


class JsonHandler(tornado.web.RequestHandler):
    """A handler whose every answer, errors included, is JSON."""

    def answer_error(self, status: int, message: str) -> None:
        """Finish with `status` and ``{"error", "message"}``."""
        self.set_status(status)
        self.finish({"error": ERROR_CODES.get(status, "internal"), "message": message})

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object; `BadApiRequestError` naming what is wrong."""
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.split(";")[0].strip().lower() == "application/json":
            raise ApiError(415, "send application/json")
        if len(self.request.body) > MAX_JSON_BODY_BYTES:
            raise ApiError(413, f"the body is over {MAX_JSON_BODY_BYTES:,} bytes")
        try:
            text = self.request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadApiRequestError("the body is not UTF-8") from None
        try:
            body = json.loads(text)
        except RecursionError:
            raise BadApiRequestError("the JSON body is nested too deeply") from None
        except ValueError as error:
            raise BadApiRequestError(f"the body is not valid JSON ({error})") from None
        if not isinstance(body, dict):
            raise BadApiRequestError("the body must be a JSON object")
        return body

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ApiError):
            status_code, message = error.status, str(error)
        else:
            message = _phrase(status_code)
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish({"error": ERROR_CODES.get(status_code, "internal"), "message": message})

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            return  # a refusal the endpoint meant: not a fault to log
        super().log_exception(typ, value, tb)


class NotFoundJson(JsonHandler):
    """Any path under ``/api/`` that names no endpoint: 404 in JSON."""

    def prepare(self) -> None:
        raise ApiError(404, "no such endpoint")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"
