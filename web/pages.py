"""The pages people see: the home page and the room, rendered from
``web/templates/``, and the static files they load from ``web/static/``.

The pages are shells: the people, the messages and everything live come over
the WebSocket and are drawn by the page's JavaScript modules, which write text
only (``textContent``, never HTML), so a name or a body can never become markup.
Every response carries the security headers below; the policy allows scripts,
styles and connections from this origin only, and no inline script at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import tornado.web
from tornado.routing import Rule, URLSpec

from chatter.config import Environment, Settings
from chatter.messages import MAX_BODY_CHARS
from web.api import KillHandler, chaos_enabled

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "STATIC_PATH",
    "TEMPLATE_PATH",
    "ChatPage",
    "HomePage",
    "SecureStaticFiles",
    "SupervisionPage",
    "page_routes",
]

T = TypeVar("T")

TEMPLATE_PATH = Path(__file__).parent / "templates"
STATIC_PATH = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        # 'self' covers ws:// and wss:// to this same host (CSP Level 3).
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        # Only DOM sinks that take no HTML are used; the browser enforces it.
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
"""No inline script or style, nothing from another host, no framing."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
"""Sent with every page and static file."""


def _secure(handler: tornado.web.RequestHandler) -> None:
    for name, value in SECURITY_HEADERS.items():
        handler.set_header(name, value)


class _Page(tornado.web.RequestHandler):
    """A page rendered from one template; the live parts are drawn by its script."""

    template = ""

    def set_default_headers(self) -> None:
        _secure(self)
        # The page itself is tiny and names versioned static files: always fresh.
        self.set_header("Cache-Control", "no-cache")

    def get(self) -> None:
        self.render(self.template)

    def head(self) -> None:
        """As GET without the body (Tornado sends no body for HEAD)."""
        self.get()


class HomePage(_Page):
    """``GET /``: what Chatter is, who is here, and the way into the room."""

    template = "home.html"

    def get(self) -> None:
        self.render(self.template, tree_link=_tree_link_shown(self.application))


class ChatPage(_Page):
    """``GET /chat[?name=NAME]``: the room; with a name, the room joins with it,
    and the message box has the keyboard from the first keystroke (the person
    came to talk). The box is told the server's body limit, so its count is the
    server's own."""

    template = "chat.html"

    def get(self) -> None:
        self.render(
            self.template,
            tree_link=_tree_link_shown(self.application),
            focus_message=bool(self.get_argument("name", "").strip()),
            max_body_chars=MAX_BODY_CHARS,
        )


class SupervisionPage(_Page):
    """``GET /supervision``: the live supervision tree, its event log and, where
    chaos is enabled, a Kill button on every actor. The template is told whether
    chaos is on, so the buttons are never drawn where the server would refuse."""

    template = "supervision.html"

    def initialize(self, settings: Settings | None = None) -> None:
        self.chatter_settings = settings

    def get(self) -> None:
        settings = self.chatter_settings or _kill_settings(self.application)
        chaos = settings is not None and chaos_enabled(settings)
        self.render(self.template, chaos=chaos)


def _tree_link_shown(application: tornado.web.Application) -> bool:
    """Whether the home page and the room link to the live supervision tree:
    in dev and test, where the tree is there to be looked at and learnt from;
    in production people see the chat only."""
    settings = _kill_settings(application)
    return settings is not None and settings.env is not Environment.PROD


def _kill_settings(application: tornado.web.Application) -> Settings | None:
    """The Settings the app's kill route was given: what decides whether a kill
    is refused, so the page and the API always agree."""
    rules: list[Rule] = list(application.wildcard_router.rules)
    for rule in rules:
        if rule.target is KillHandler and rule.target_kwargs:
            settings = rule.target_kwargs.get("settings")
            if isinstance(settings, Settings):
                return settings
    return None


class SecureStaticFiles(tornado.web.StaticFileHandler):
    """Static files with the same security headers as the pages. A path that
    names no file here (a directory, something outside, a NUL byte, a name too
    long for the file system) is 404, whatever made it so."""

    def set_default_headers(self) -> None:
        _secure(self)

    @classmethod
    def get_absolute_path(cls, root: str, path: str) -> str:
        return _as_not_found(lambda: super(SecureStaticFiles, cls).get_absolute_path(root, path))

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if "\x00" in absolute_path:
            raise tornado.web.HTTPError(404)
        return _as_not_found(
            lambda: super(SecureStaticFiles, self).validate_absolute_path(root, absolute_path)
        )


def _as_not_found(find: Callable[[], T]) -> T:
    """`find()`, with every way a path can fail to name a served file (Tornado's
    403 "not a file" and "not in root", a path the OS refuses) turned into 404,
    so that a caller cannot tell which way a path went wrong."""
    try:
        return find()
    except tornado.web.HTTPError as error:
        if error.status_code == 403:
            raise tornado.web.HTTPError(404) from None
        raise
    except (OSError, ValueError):
        raise tornado.web.HTTPError(404) from None


def page_routes() -> list[URLSpec]:
    """The page routes, for `web.app.make_app`."""
    return [
        tornado.web.url(r"/", HomePage, name="home"),
        tornado.web.url(r"/chat", ChatPage, name="chat"),
        tornado.web.url(r"/supervision", SupervisionPage, name="supervision"),
    ]
