"""The whole benchmark (``python -m bench --quick``) runs end to end: every section
of every scenario is produced with every figure, nothing is lost at the lowest
fan-out step, and every process it started has stopped. Not how fast."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as bench_main
from bench.fanout import runner
from bench.fanout.servers import SERVERS

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240.0
"""The quick run takes under a minute on a quiet machine; allow for a busy one."""
SETTLE_TIMEOUT_S = 5.0
"""How long processes that are already exiting may take to be gone."""


def _expected_sections() -> list[str]:
    """Every scenario whose module exists (the others report themselves absent)."""
    return [
        name
        for name in bench_main.NAMES
        if name in bench_main.FANOUT_NAMES or importlib.util.find_spec(f"bench.{name}")
    ]


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


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], str, str, list[str], Path]:
    """One quick run in a session of its own: its JSON, stdout, stderr, any process
    of that session still alive after it exited, and its results directory."""
    results = tmp_path_factory.mktemp("bench")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--results", str(results)],
        cwd=REPO,
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
    while (leftovers := _processes_in_session(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    document = json.loads((results / "bench-quick.json").read_text())
    return document, stdout, stderr, leftovers, results


def test_every_section_is_produced_with_every_figure(
    quick_run: tuple[dict[str, Any], str, str, list[str], Path],
) -> None:
    document, _, stderr, _, _ = quick_run
    assert document["errors"] == {}, stderr
    assert list(document["sections"]) == _expected_sections()
    for name, section in document["sections"].items():
        assert section["title"], name
        assert section["markdown"].strip(), name
        assert section["figures"], name
        for figure, value in section["figures"].items():
            assert isinstance(value, int | float), (name, figure, value)
            assert math.isfinite(value), (name, figure, value)
        for target in section["targets"]:
            assert target["name"], (name, target)
            assert target["measured"], (name, target)
            assert isinstance(target["met"], bool), (name, target)
        for image in section["images"]:
            assert (REPO / image).is_file() or Path(image).is_file(), (name, image)


def test_scenarios_1_2_and_6_measure_every_server(
    quick_run: tuple[dict[str, Any], str, str, list[str], Path],
) -> None:
    sections = quick_run[0]["sections"]
    fanout, latency, restart = sections["fanout"], sections["latency"], sections["restart"]
    for server in SERVERS:
        for figure in ("sustained_deliveries_per_s", "delivery_p99_ms", "ack_p99_ms"):
            assert fanout["figures"][f"{server}_{figure}"] > 0, (server, figure)
        for figure in ("p50_ms", "p99_ms", "max_ms", "ack_p99_ms"):
            assert latency["figures"][f"{server}_{figure}"] > 0, (server, figure)
        assert latency["figures"][f"{server}_lost"] == 0, server
    for baseline in ("demo", "frame", "socketio"):
        assert f"chatter_vs_{baseline}" in fanout["figures"]
    assert "chatter_p99_vs_demo" in latency["figures"]
    assert len(fanout["targets"]) == 2
    assert len(latency["targets"]) == 1
    assert len(restart["targets"]) == 2
    assert restart["figures"]["restarts"] == 1, "the room was killed and restarted once"
    assert restart["figures"]["lost"] == 0
    assert restart["figures"]["unanswered"] == 0
    assert [Path(image).name for image in fanout["images"]] == ["fanout-p99-quick.png"]
    assert [Path(image).name for image in restart["images"]] == ["restart-quick.png"]


def test_the_page_has_a_table_per_scenario(
    quick_run: tuple[dict[str, Any], str, str, list[str], Path],
) -> None:
    document, stdout, _, _, results = quick_run
    page = (results / "PERFORMANCE-quick.md").read_text()
    assert "### Targets" in page
    assert "**Machine**" in page
    for section in document["sections"].values():
        assert f"### {section['title']}" in page
    assert page.count("![") == sum(len(s["images"]) for s in document["sections"].values())
    assert "benchmark:" in stdout


def test_progress_is_shown_while_it_runs(
    quick_run: tuple[dict[str, Any], str, str, list[str], Path],
) -> None:
    stderr = quick_run[2]
    assert "== scenarios 1, 2, 6" in stderr
    assert "[chatter] scenario 6, restart" in stderr


def test_every_process_it_started_has_stopped(
    quick_run: tuple[dict[str, Any], str, str, list[str], Path],
) -> None:
    assert quick_run[3] == []


def test_a_rate_over_the_post_throttle_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 10 senders"):
        runner.Settings(
            connections=10, senders=5, generators=1, rates=(20,), duration_s=1, drain_s=1
        ).validate()
