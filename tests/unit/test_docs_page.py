"""docs/SUPERVISION.md as the supervision page links to it: anchors as GitHub
makes them, and nothing of the text becomes markup but what the renderer means."""

from __future__ import annotations

import re

from web.docs import SUPERVISION_DOC, anchor, render_markdown


def test_anchors_are_githubs() -> None:
    assert anchor("5. Restart intensity") == "5-restart-intensity"
    assert anchor("13. Chatter's tree") == "13-chatters-tree"
    assert anchor("10. Two runtimes: threads and an event loop") == (
        "10-two-runtimes-threads-and-an-event-loop"
    )


def test_headings_code_and_text_are_rendered_and_everything_else_escaped() -> None:
    html = render_markdown(
        "## 3. Strategies\n\nSay `one_for_one` <b>bold</b> [more](#x) [no](javascript:x)\n\n"
        "```python\nif a < b:\n```\n"
    )
    assert '<h2 id="3-strategies">3. Strategies</h2>' in html
    assert "<code>one_for_one</code>" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert '<a href="#x">more</a>' in html
    assert "javascript" not in re.findall(r'href="([^"]*)"', html)
    assert "[no](javascript:x)" in html
    assert "<pre><code>if a &lt; b:</code></pre>" in html


def test_every_section_the_supervision_page_links_to_is_in_the_guide() -> None:
    page = (SUPERVISION_DOC.parents[1] / "web" / "templates" / "supervision.html").read_text()
    linked = set(re.findall(r'href="/docs/supervision#([^"]+)"', page))
    served = set(re.findall(r'<h\d id="([^"]+)"', render_markdown(SUPERVISION_DOC.read_text())))
    assert linked, "the page links to no section"
    assert linked <= served, linked - served
