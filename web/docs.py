"""``GET /docs/supervision``: docs/SUPERVISION.md, served so the supervision
page can link to its sections.

The page's legend explains each word it shows and links to the section that
says more (``/docs/supervision#5-restart-intensity``). The anchors are the
ones GitHub gives the same headings, so a link works on either. The rendering
is deliberately small: headings with anchors, code blocks, and every other
block as it is written (Markdown reads well as text), with code spans and
links marked up; everything else is escaped text.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import tornado.web
from tornado.routing import URLSpec

from web.pages import SECURITY_HEADERS

__all__ = ["SUPERVISION_DOC", "DocsPage", "anchor", "docs_routes", "render_markdown"]

SUPERVISION_DOC = Path(__file__).resolve().parents[1] / "docs" / "SUPERVISION.md"
"""In a checkout; an installed wheel has no docs/, and the route answers 404."""

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_CODE_SPAN = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\((#[\w-]+|https?://[^)\s]+)\)")


def anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation but
    ``-`` and ``_`` dropped, spaces become ``-`` ("5. Restart intensity" →
    ``5-restart-intensity``)."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=True)
    escaped = _CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", escaped)
    return _LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', escaped)


def render_markdown(text: str) -> str:
    """`text` as HTML: headings (with `anchor` ids), fenced code, and each
    other block (lines up to a blank one) as a paragraph kept as written."""
    out: list[str] = []
    block: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if block:
            out.append(f'<p class="doc-block">{_inline(chr(10).join(block))}</p>')
            block.clear()

    for line in text.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            flush()
            code = []
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level, title = len(heading.group(1)), heading.group(2)
            out.append(f'<h{level} id="{anchor(title)}">{_inline(title)}</h{level}>')
        elif line.strip():
            block.append(line)
        else:
            flush()
    flush()
    if code is not None:
        out.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
    return "\n".join(out)


class DocsPage(tornado.web.RequestHandler):
    """``GET /docs/supervision``: the supervision guide, rendered, with the
    pages' security headers."""

    template = "docs.html"

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Cache-Control", "no-cache")

    def get(self) -> None:
        try:
            text = SUPERVISION_DOC.read_text(encoding="utf-8")
        except OSError:
            raise tornado.web.HTTPError(404) from None
        self.render(self.template, title="Supervision trees", content=render_markdown(text))


def docs_routes() -> list[URLSpec]:
    """The docs routes, for `web.app.make_app`."""
    return [tornado.web.url(r"/docs/supervision", DocsPage, name="docs-supervision")]
