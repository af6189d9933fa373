"""The whole benchmark (``python -m bench --quick``) runs end to end: every section
of every scenario is produced with every figure, nothing is lost at the lowest
fan-out step, and every process it started has stopped. Not how fast; but the
batched baseline must deliver every message to every connection, in order."""

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

from bench.clients import ClientProcesses, Join, Joined, Open, Opened, Step
from bench.fanout import QUICK, Settings
from bench.report import NAMES
from bench.servers import BATCHED, HOST, SERVERS, running_server, wire_of

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240.0
"""The quick run takes under a minute on a quiet machine; allow for a busy one."""
SETTLE_TIMEOUT_S = 5.0
"""How long processes that are already exiting may take to be gone."""


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
    assert list(document["sections"]) == list(NAMES)
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
    for baseline in ("demo", "frame", "batched", "socketio"):
        assert f"chatter_vs_{baseline}" in fanout["figures"]
    for rate in QUICK.compare_rates:
        for server in ("batched", "chatter"):
            for figure in ("p50", "p99"):
                assert fanout["figures"][f"{server}_delivery_{figure}_ms_at_{rate:g}"] > 0
        assert fanout["figures"][f"chatter_p99_vs_batched_at_{rate:g}"] > 0
    assert "chatter_p99_vs_demo" in latency["figures"]
    # 1.5x the demo, 3x python-socketio, 0.95x the batched frames; p99 at each compared rate
    assert len(fanout["targets"]) == 3 + len(QUICK.compare_rates)
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
    settings = Settings(10, 5, 1, rates=(20,), duration_s=1, drain_s=1, compare_rates=(20,))
    with pytest.raises(ValueError, match="at least 10 senders"):
        settings.validate()


def test_the_batched_baseline_delivers_every_message_to_every_connection_in_order(
    tmp_path: Path,
) -> None:
    """Posts from many senders at once, so that a loop turn joins several of them:
    every connection gets every acked message exactly once, in seq order."""
    connections, senders, rate_per_s, duration_s = 60, 20, 400.0, 1.0
    with (
        running_server(BATCHED, tmp_path) as server,
        ClientProcesses(2, HOST, server.port, wire_of(BATCHED), "batched-test") as clients,
    ):
        clients.ask_all(Open(connections), Opened, 30.0)
        clients.ask_all(Join(senders), Joined, 30.0)
        start = time.time() + 0.3
        clients.send_all(Step(1, rate_per_s, start, duration_s, start + duration_s + 5.0))
        tallies = clients.tallies(1, 5.0, 30.0)

    acked = {seq for tally in tallies for seq in tally.acked}
    assert len(acked) == rate_per_s * duration_s
    for tally in tallies:
        assert tally.unanswered == 0
        assert tally.open_at_end == tally.connections == connections // 2
        assert tally.counts == dict.fromkeys(acked, tally.connections)
        assert tally.out_of_order == 0
