"""Scenarios 3, 4 and 5 of the benchmark run end to end in their quick form:
every figure is produced and finite, every target has a verdict, and no
process they started outlives them. Not how fast."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 120.0
SETTLE_TIMEOUT_S = 5.0
"""How long processes that are already exiting may take to be gone."""

EXPECTED_FIGURES = {
    "capacity": {
        f"{server}_300_{figure}"
        for server in ("demo", "socketio", "chatter")
        for figure in (
            "connect_s",
            "rss_idle_mib",
            "rss_mib",
            "rss_per_connection_kib",
            "threads",
            "reached_fraction",
            "fanout_ms",
        )
    }
    | {"chatter_over_demo_kib_ratio", "chatter_over_socketio_kib_ratio"},
    "history": {
        "messages_stored",
        "seed_s",
        "joins",
        "welcome_messages_min",
        "welcome_p50_ms",
        "welcome_p99_ms",
        "welcome_max_ms",
        "upgrade_p50_ms",
        "upgrade_p99_ms",
        "join_server_cpu_percent",
        "join_host_busy_percent",
        "history_pages",
        "history_page_messages_min",
        "history_p50_ms",
        "history_p99_ms",
        "resumes",
        "resume_messages_min",
        "resume_p50_ms",
        "resume_max_ms",
    },
    "storage": {
        f"{way}_{figure}"
        for way in ("group", "single")
        for figure in (
            "messages_per_s",
            "transactions",
            "messages_per_transaction",
            "store_p50_ms",
            "store_p99_ms",
        )
    }
    | {"messages_per_way", "group_over_single_ratio"},
}
"""Each scenario's figures in its quick form, by name."""


def _processes_in_session(session: int) -> list[str]:
    """/proc/PID/stat of each process of a session (Linux)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[3]) == session:
                found.append(stat)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def _processes_naming(path: Path) -> list[str]:
    """The command line of each process that names `path` (PostgreSQL detaches
    from the session that started it, but its data directory is in its command line)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        if str(path) in command:
            found.append(command)
    return found


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, list[str]]:
    """``python -m bench --quick`` of scenarios 3, 4 and 5, in a session of its own,
    with its temporary files in a directory of its own: its JSON, its page, and any
    process of that session, or using that directory, still alive after it exited."""
    results = tmp_path_factory.mktemp("bench")
    temporary = tmp_path_factory.mktemp("tmp")
    only = [argument for name in sorted(EXPECTED_FIGURES) for argument in ("--only", name)]
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", *only, "--results", str(results)],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(temporary)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.communicate()
    assert process.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    # multiprocessing's resource tracker ends when it sees its parent go: allow it a moment.
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    leftovers = _processes_in_session(process.pid) + _processes_naming(temporary)
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.05)
        leftovers = _processes_in_session(process.pid) + _processes_naming(temporary)
    document = json.loads((results / "bench-quick.json").read_text())
    return document, (results / "PERFORMANCE-quick.md").read_text(), leftovers


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_every_figure_is_produced_and_finite(
    quick_run: tuple[dict[str, Any], str, list[str]], name: str
) -> None:
    document, _, _ = quick_run
    assert document["errors"] == {}
    figures = document["sections"][name]["figures"]
    assert set(figures) == EXPECTED_FIGURES[name]
    for figure, value in figures.items():
        assert isinstance(value, int | float), figure
        assert math.isfinite(value), figure


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_every_target_has_a_verdict_and_a_measurement(
    quick_run: tuple[dict[str, Any], str, list[str]], name: str
) -> None:
    document, page, _ = quick_run
    section = document["sections"][name]
    assert section["targets"]
    for target in section["targets"]:
        assert isinstance(target["met"], bool)
        assert target["measured"]
        assert target["name"] in page
    assert f"### {section['title']}" in page
    assert "| --- |" in section["markdown"]


def test_every_process_it_started_has_stopped(
    quick_run: tuple[dict[str, Any], str, list[str]],
) -> None:
    assert quick_run[2] == []


def test_the_scenarios_offer_run_for_the_report() -> None:
    from bench import capacity, history, storage

    for module in (capacity, history, storage):
        assert callable(module.run)
