"""What one benchmark scenario hands to the report: its tables, its figures and
its verdicts, so that `make bench` can run every scenario and write one page.

Each scenario module (`bench.fanout`, `bench.capacity`, `bench.history`,
`bench.storage`) offers ``run(quick: bool, progress: Progress) -> Section``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Progress", "Section", "Target"]

Progress = Callable[[str], None]
"""Prints one line of progress while a scenario runs (to stderr)."""


@dataclass(frozen=True)
class Target:
    """One target of the issue and whether this run met it."""

    name: str
    """What is promised, e.g. ``"group commit >= 5x one transaction per message"``."""
    met: bool
    measured: str
    """What was measured, with its unit or ratio, e.g. ``"7.9x"``."""
    detail: str = ""
    """Where it is missed: by how much and what limits it."""


@dataclass(frozen=True)
class Section:
    """A scenario's contribution to the report."""

    title: str
    markdown: str
    """The scenario's tables and notes, Markdown, without its heading."""
    figures: dict[str, float]
    """Every figure by a stable name (``"welcome_p99_ms"``): the JSON results and
    the quick test, which checks that each is present and finite."""
    targets: list[Target] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    """Paths of plots the scenario wrote (PNG), relative to the repository."""
