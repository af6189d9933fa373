"""The fan-out benchmark runs end to end for both servers: every figure is
produced and nothing is lost at the lowest step. Not how fast."""

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

from bench.fanout import runner

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 110.0
SETTLE_TIMEOUT_S = 5.0
"""How long processes that are already exiting may take to be gone."""
SERVERS = ("demo", "chatter")


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
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, list[str]]:
    """One quick run in a session of its own: its JSON, its table, and any
    process of that session still alive after it exited."""
    out = tmp_path_factory.mktemp("bench") / "fanout.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fanout", "--quick", "--json", str(out)],
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
            process.kill()
            process.communicate()
    assert process.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    # multiprocessing's resource tracker ends when it sees its parent go: allow it a moment.
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while (leftovers := _processes_in_session(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return json.loads(out.read_text()), stdout, leftovers


def test_every_figure_is_produced_for_both_servers(
    quick_run: tuple[dict[str, Any], str, list[str]],
) -> None:
    report, _, _ = quick_run
    settings = runner.QUICK
    assert list(report["steps"]) == list(SERVERS)
    for server in SERVERS:
        steps = report["steps"][server]
        assert [step["rate_per_s"] for step in steps] == list(settings.rates), server
        for step in steps:
            where = (server, step["rate_per_s"])
            assert step["connections"] == settings.connections, where
            for figure in (
                "deliveries_per_s",
                "latency_p50_ms",
                "latency_p99_ms",
                "latency_max_ms",
                "ack_p50_ms",
                "ack_p99_ms",
                "server_rss_mib",
            ):
                assert isinstance(step[figure], float), (where, figure)
                assert math.isfinite(step[figure]), (where, figure)
                assert step[figure] > 0, (where, figure)
            assert step["latency_p50_ms"] <= step["latency_p99_ms"] <= step["latency_max_ms"]
            assert step["server_cpu_percent"] >= 0, where
            assert step["host_cpu_percent"] >= 0, where
            assert math.isfinite(step["other_cpu_percent"]), where
            assert step["server_threads"] >= 1, where
            assert len(step["generator_cpu_percent"]) == settings.generators, where
            assert all(c >= 0 for c in step["generator_cpu_percent"]), where
            assert (step["db_cpu_percent"] is not None) == (server == "chatter"), where
    machine = report["machine"]
    assert machine["cpus"] > 0
    assert machine["versions"]["tornado"]
    assert machine["postgres"].startswith("PostgreSQL ")
    assert set(report["verdict"]["sustained_rate_per_s"]) == set(SERVERS)


def test_nothing_is_lost_at_the_lowest_step(
    quick_run: tuple[dict[str, Any], str, list[str]],
) -> None:
    report, _, _ = quick_run
    settings = runner.QUICK
    posts = round(settings.rates[0] * settings.duration_s)
    for server in SERVERS:
        lowest = report["steps"][server][0]
        assert lowest["sent"] == lowest["acked"] == posts, server
        assert lowest["rejected"] == {}, server
        assert lowest["unanswered"] == 0, server
        assert lowest["expected"] == posts * settings.connections, server
        assert lowest["delivered"] == lowest["expected"], server
        assert lowest["lost"] == 0, server
        assert lowest["duplicates"] == lowest["out_of_order"] == 0, server
        assert lowest["closed_connections"] == 0, server


def test_the_table_compares_chatter_with_the_demo(
    quick_run: tuple[dict[str, Any], str, list[str]],
) -> None:
    _, table, _ = quick_run
    for rate in runner.QUICK.rates:
        assert any(line.split()[:2] == [f"{rate:g}", "demo"] for line in table.splitlines())
        assert any(line.split()[:2] == [f"{rate:g}", "chatter"] for line in table.splitlines())
    assert "d/s ratio" in table
    assert "Chatter / demo sustained deliveries/s:" in table
    assert "p99 at 10 msg/s:" in table


def test_every_process_it_started_has_stopped(
    quick_run: tuple[dict[str, Any], str, list[str]],
) -> None:
    _, _, leftovers = quick_run
    assert leftovers == []


def test_a_rate_over_the_post_throttle_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 10 senders"):
        runner.Settings(
            connections=10, senders=5, generators=1, rates=(20,), duration_s=1, drain_s=1
        ).validate()
