"""``python -m bench``: the whole benchmark, one run, one report (``--help`` for options).

====================  =============================================  =====================
name                  scenario                                       module
====================  =============================================  =====================
``fanout``            1. fan-out at 1,000 connections, rate stepped  `bench.sections`
``latency``           2. latency at the seed's scale                 `bench.sections`
``capacity``          3. connection capacity                         `bench.capacity`
``history``           4. joins with history                          `bench.history`
``storage``           5. group commit against one transaction each   `bench.storage`
``restart``           6. the room killed under scenario 2's load     `bench.restart`
``cluster``           7. several nodes on one PostgreSQL, and one    `bench.cluster`
====================  =============================================  =====================

Scenarios 1, 2 and 6 are measured together (`bench.fanout`: one database, each
server started once), the others by their module's ``run(quick, progress) ->
Section``. A scenario that fails is reported with its traceback, the others still
run, and the exit status is 1: a failure is never hidden.

Progress goes to stderr (each line with the time since the start), then the
targets, met or missed. Every figure goes to ``bench.json`` in the results
directory (``bench-quick.json`` for ``--quick``), the plots beside it. A full run
of every scenario with the default settings rewrites the Results part of
docs/PERFORMANCE.md (between the ``bench:results`` markers) and copies the plots
to docs/images/; any other run writes its page beside the results instead
(``PERFORMANCE-quick.md``, ``PERFORMANCE-partial.md``), never over a measured one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from importlib import import_module
from pathlib import Path

from bench import sections
from bench.fanout import FULL, QUICK, SCENARIOS, Settings
from bench.report import (
    NAMES,
    NUMBERS,
    REPO,
    Outcome,
    Progress,
    Run,
    Section,
    machine,
    minutes,
    render,
    to_json,
    write_docs,
)
from bench.servers import SERVERS

__all__ = ["main", "measure"]

RESULTS_DIR = REPO / "bench" / "results"
DOCS = REPO / "docs" / "PERFORMANCE.md"
IMAGES = REPO / "docs" / "images"


def _progress_since(start: float) -> Progress:
    def progress(line: str) -> None:
        tenths = int((time.monotonic() - start) * 10)  # 59.96 s must not show as 00:60.0
        minutes_, tenths = divmod(tenths, 600)
        print(f"[{minutes_:02d}:{tenths / 10:04.1f}] {line}", file=sys.stderr, flush=True)

    return progress


def _scenario(name: str, quick: bool, progress: Progress) -> list[Section]:
    """Scenario 3, 4, 5 or 7: its module's ``run(quick, progress) -> Section``."""
    section: Section = import_module(f"bench.{name}").run(quick, progress)
    return [section]


def measure(names: Sequence[str], quick: bool, settings: Settings, results_dir: Path) -> Run:
    """Every scenario of `names`, in the issue's order (those of `bench.fanout` with
    `settings`, in one go); failures are recorded, not raised."""
    start = time.monotonic()
    progress = _progress_since(start)
    run = Run(quick, datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), machine())
    together = tuple(name for name in SCENARIOS if name in names)
    jobs: list[tuple[Sequence[str], Callable[[], list[Section]]]] = []
    if together:
        scenarios = replace(settings, scenarios=together)
        suffix = "-quick" if quick else ""
        jobs.append((together, lambda: sections.run(scenarios, progress, results_dir, suffix)))
    for name in (n for n in NAMES if n in names and n not in SCENARIOS):
        jobs.append(([name], partial(_scenario, name, quick, progress)))
    outcomes: dict[str, Outcome] = {}
    for job_names, job in jobs:
        started = time.monotonic()
        numbers = ", ".join(str(NUMBERS[name]) for name in job_names)
        progress(
            f"== scenario{'s' if len(job_names) > 1 else ''} {numbers}: {', '.join(job_names)}"
        )
        try:
            for name, section in zip(job_names, job(), strict=True):
                outcomes[name] = Outcome(name, section, elapsed_s=time.monotonic() - started)
        except Exception:
            error = traceback.format_exc()
            progress(f"[{', '.join(job_names)}] FAILED:\n{error}")
            for name in job_names:
                outcomes[name] = Outcome(name, error=error, elapsed_s=time.monotonic() - started)
    run.outcomes = [outcomes[name] for name in NAMES if name in outcomes]
    run.elapsed_s = time.monotonic() - start
    return run


def _publish(run: Run, results_dir: Path, page_name: str | None) -> Path:
    """Write the page: into docs/ (plots copied to docs/images/), or as `page_name`
    beside the results."""
    images = [image for o in run.outcomes if o.section for image in o.section.images]
    if page_name is not None:
        page = results_dir / page_name
        page.write_text(render(run, {image: str((REPO / image).resolve()) for image in images}))
        return page
    IMAGES.mkdir(parents=True, exist_ok=True)
    for image in images:
        shutil.copyfile(REPO / image, IMAGES / Path(image).name)
    write_docs(DOCS, render(run, {image: f"images/{Path(image).name}" for image in images}))
    return DOCS


def _rates(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"rates are numbers separated by commas: {text!r}"
        ) from None


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="every scenario small (about a minute)"
    )
    parser.add_argument(
        "--only", action="append", choices=NAMES, help="only this scenario (repeatable)"
    )
    parser.add_argument(
        "--server",
        action="append",
        choices=SERVERS,
        help="scenarios 1, 2, 6: only this server (repeatable)",
    )
    parser.add_argument(
        "--rates",
        type=_rates,
        help="scenario 1: msg/s per step, rising, comma separated "
        f"(default {','.join(f'{r:g}' for r in FULL.rates)})",
    )
    parser.add_argument(
        "--duration", type=float, help=f"scenario 1: seconds per step ({FULL.duration_s:g})"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help="where bench.json, the plots and a page not for docs/ go "
        f"(default {RESULTS_DIR.relative_to(REPO)})",
    )
    parser.add_argument("--no-docs", action="store_true", help="never rewrite docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    overrides = {
        "servers": tuple(args.server or ()),
        "rates": args.rates,
        "duration_s": args.duration,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v})
    try:
        settings.validate()
    except ValueError as error:
        parser.error(str(error))
    # Stopping the run (Ctrl-C, or SIGTERM) must still stop everything it started:
    # turn both into an exception the scenarios' finally blocks see.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    results_dir: Path = args.results
    results_dir.mkdir(parents=True, exist_ok=True)
    run = measure(args.only or NAMES, args.quick, settings, results_dir)

    path = results_dir / f"bench{'-quick' if run.quick else ''}.json"
    path.write_text(json.dumps(to_json(run), indent=2) + "\n")
    page_name = None  # docs/PERFORMANCE.md
    if run.quick:
        page_name = "PERFORMANCE-quick.md"
    elif args.only or any(overrides.values()):
        page_name = "PERFORMANCE-partial.md"
    elif args.no_docs:
        page_name = "PERFORMANCE.md"
    page = _publish(run, results_dir, page_name)

    print(f"\nbenchmark: {minutes(run.elapsed_s)}; figures in {path}; page {page}")
    for outcome in run.outcomes:
        if outcome.section is None:
            print(f"  {NUMBERS[outcome.name]}. {outcome.name}: FAILED")
        for target in outcome.section.targets if outcome.section else []:
            verdict = "met" if target.met else "MISSED"
            print(f"  {NUMBERS[outcome.name]}. {target.name}: {target.measured} - {verdict}")
    failed = [o.name for o in run.outcomes if o.error is not None]
    if failed:
        print(f"FAILED: {', '.join(failed)} (tracebacks above and in {path})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
