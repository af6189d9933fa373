"""The whole benchmark (``python -m bench --quick``) runs end to end: every section
of every scenario is produced with every figure, finite, and every target has a
verdict; nothing is lost at the lowest fan-out step nor across a cluster's nodes,
and every process it started has stopped. Not how fast; but the batched baseline
must deliver every message to every connection, in order."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from bench import cluster
from bench.clients import ClientProcesses, Done, Join, Open, Opened, Step
from bench.fanout import QUICK, Settings
from bench.report import NAMES
from bench.servers import BATCHED, SERVERS, running_server
from chatter.lease import HEARTBEAT_S, LEASE_S

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 600.0
"""The quick run takes about a minute on a quiet machine; this is only for a hung one."""

pytestmark = pytest.mark.timeout(RUN_TIMEOUT_S + 60)
"""The first test runs the quick benchmark in its set-up: a busy machine takes
it past the suite's per-test bound (it did, at 120 s, with the CPU hogged)."""
SETTLE_TIMEOUT_S = 10.0
"""How long processes that are already exiting may take to be gone."""

EXPECTED_FIGURES = {
    "capacity": {
        f"{server}_300_{figure}"
        for server in ("demo", "socketio", "chatter")
        for figure in (
            "connect_s",
            "connections_per_s",
            "rss_idle_mib",
            "rss_mib",
            "rss_per_connection_kib",
            "threads",
            "reached_fraction",
            "fanout_ms",
        )
    }
    | {
        f"{server}_300_median_{figure}"
        for server in ("demo", "chatter")
        for figure in ("connect_s", "connections_per_s")
    }
    | {
        "chatter_over_demo_kib_ratio",
        "chatter_over_socketio_kib_ratio",
        "chatter_over_demo_rate_ratio",
    },
    "history": {
        f"{what}_{figure}"
        for what, figures in (
            ("welcome", ("messages_min", "p50_ms", "p99_ms", "max_ms")),
            ("upgrade", ("p50_ms", "p99_ms")),
            ("join", ("server_cpu_percent", "host_busy_percent")),
            ("history", ("pages", "page_messages_min", "p50_ms", "p99_ms")),
            ("resume", ("messages_min", "p50_ms", "max_ms")),
        )
        for figure in figures
    }
    | {"messages_stored", "seed_s", "joins", "resumes"},
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
    "cluster": {
        f"latency_{clients}_{figure}"
        for clients in ("one_node", "same_node", "cross_node", "three_nodes")
        for figure in ("p50_ms", "p99_ms", "max_ms", "lost")
    }
    | {"latency_cross_node_over_one_node_p99", "throughput_two_over_one"}
    | {
        f"wakes_{node}_{figure}"
        for node in ("one_node1", "three_node1", "three_node2", "three_node3")
        for figure in ("stored", "notify_per_s", "messages_per_wake", "log_reads", "ticks")
    }
    | {
        f"throughput_{nodes}_{figure}"
        for nodes in ("one_node", "two_nodes")
        for figure in (
            "deliveries_per_s",
            "p50_ms",
            "p99_ms",
            "lost",
            "nodes_cpu_percent",
            "db_cpu_percent",
            "generators_cpu_percent",
            "other_cpu_percent",
            "machine_busy_percent",
        )
    }
    | {
        f"failover_{figure}"
        for figure in (
            "clients",
            "closed_max_ms",
            "back_max_ms",
            "name_back_ms",
            "name_seen_leaving",
            "leave_seen_ms",
            "name_free_ms",
            "sent",
            "acked",
            "refused",
            "missed",
            "duplicates",
            "out_of_order",
        )
    },
}
"""Scenarios 3, 4, 5 and 7's figures in their quick form, by name."""


class QuickRun(NamedTuple):
    document: dict[str, Any]
    stdout: str
    stderr: str
    page: str
    leftovers: list[str]
    """Processes of the run's session, or naming its temporary directory, still alive."""


def _leftovers(session: int, temporary: Path) -> list[str]:
    """The command line of each process of `session`, or naming `temporary`
    (PostgreSQL detaches from the session that started it, but its data directory
    is in its command line)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
            in_session = int(stat[stat.rindex(")") + 2 :].split()[3]) == session
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if in_session or str(temporary) in command:
            found.append(command)
    return found


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    """One quick run in a session of its own, with its temporary files in a directory
    of its own; `QuickRun.leftovers` once every process it ended has had time to go."""
    results, temporary = tmp_path_factory.mktemp("bench"), tmp_path_factory.mktemp("tmp")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--results", str(results)],
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
    while (leftovers := _leftovers(process.pid, temporary)) and time.monotonic() < deadline:
        time.sleep(0.05)
    document = json.loads((results / "bench-quick.json").read_text())
    page = (results / "PERFORMANCE-quick.md").read_text()
    return QuickRun(document, stdout, stderr, page, leftovers)


def test_every_section_is_produced_with_every_figure(quick_run: QuickRun) -> None:
    document = quick_run.document
    assert document["errors"] == {}, quick_run.stderr
    assert list(document["sections"]) == list(NAMES)
    for name, section in document["sections"].items():
        assert section["title"], name
        assert "| --- |" in section["markdown"], name
        assert section["figures"], name
        assert set(section["figures"]) >= EXPECTED_FIGURES.get(name, set()), name
        for figure, value in section["figures"].items():
            assert isinstance(value, int | float), (name, figure, value)
            assert math.isfinite(value), (name, figure, value)
        assert section["targets"], name
        for target in section["targets"]:
            assert target["name"] in quick_run.page, (name, target)
            assert target["measured"], (name, target)
            assert isinstance(target["met"], bool), (name, target)
        for image in section["images"]:
            assert (REPO / image).is_file() or Path(image).is_file(), (name, image)


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_scenarios_3_4_5_and_7_have_their_figures_and_no_other(
    quick_run: QuickRun, name: str
) -> None:
    assert set(quick_run.document["sections"][name]["figures"]) == EXPECTED_FIGURES[name]


def test_scenarios_1_2_and_6_measure_every_server(quick_run: QuickRun) -> None:
    sections = quick_run.document["sections"]
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


def test_scenario_7_measures_several_nodes_beside_one_and_loses_nothing(
    quick_run: QuickRun,
) -> None:
    section = quick_run.document["sections"]["cluster"]
    figures = section["figures"]
    for clients in ("one_node", "same_node", "cross_node", "three_nodes"):
        assert figures[f"latency_{clients}_p99_ms"] > 0, clients
        assert figures[f"latency_{clients}_lost"] == 0, clients
    for nodes in ("one_node", "two_nodes"):
        assert figures[f"throughput_{nodes}_deliveries_per_s"] > 0, nodes
        assert figures[f"throughput_{nodes}_lost"] == 0, nodes
        assert figures[f"throughput_{nodes}_db_cpu_percent"] > 0, nodes
    # Only node-1 stores; every node is woken by its commits and reads node-1's from the log.
    assert (
        figures["wakes_three_node1_stored"] == cluster.QUICK.rate_per_s * cluster.QUICK.duration_s
    )
    for node in ("three_node2", "three_node3"):
        assert figures[f"wakes_{node}_stored"] == 0, node
        assert figures[f"wakes_{node}_notify_per_s"] > 0, node
        assert figures[f"wakes_{node}_log_reads"] > figures[f"wakes_{node}_ticks"], node
    # The killed node's clients came back with nothing missed, `kept` under its name
    # and never seen leaving; `gone` was not free before the dead node's lease ran out.
    assert figures["failover_clients"] == cluster.QUICK.viewers + 1
    assert figures["failover_acked"] > 0
    for figure in ("refused", "missed", "duplicates", "out_of_order", "name_seen_leaving"):
        assert figures[f"failover_{figure}"] == 0, figure
    assert figures["failover_back_max_ms"] >= figures["failover_closed_max_ms"] > 0
    assert figures["failover_name_back_ms"] > 0
    assert figures["failover_name_free_ms"] >= (LEASE_S - HEARTBEAT_S) * 1000
    assert len(section["targets"]) == 3
    assert "== scenario 7: cluster" in quick_run.stderr


def test_the_page_has_a_table_per_scenario(quick_run: QuickRun) -> None:
    page, sections = quick_run.page, quick_run.document["sections"].values()
    assert "### Targets" in page
    assert "**Machine**" in page
    for section in sections:
        assert f"### {section['title']}" in page
    assert page.count("![") == sum(len(s["images"]) for s in sections)
    assert "benchmark:" in quick_run.stdout


def test_progress_is_shown_while_it_runs(quick_run: QuickRun) -> None:
    assert "== scenarios 1, 2, 6" in quick_run.stderr
    assert "[chatter] scenario 6, restart" in quick_run.stderr


def test_every_process_it_started_has_stopped(quick_run: QuickRun) -> None:
    assert quick_run.leftovers == []


def test_a_rate_over_the_post_throttle_is_refused() -> None:
    settings = Settings(10, 5, 1, rates=(20,), duration_s=1, drain_s=1, compare_rates=(20,))
    with pytest.raises(ValueError, match="at least 10 senders"):
        settings.validate()


def test_the_batched_baseline_delivers_every_message_to_every_connection_in_order(
    tmp_path: Path,
) -> None:
    """Posts from many senders at once, so that a loop turn joins several of them:
    every connection gets every acked message exactly once, in seq order. The
    deadlines are for a hung server only: answers and deliveries end the waits."""
    connections, senders, rate_per_s, duration_s, deadline_s = 60, 20, 400.0, 1.0, 60.0
    with (
        running_server(BATCHED, tmp_path) as server,
        ClientProcesses(2, server, "batched-test") as clients,
    ):
        clients.ask(Open(connections), Opened, deadline_s)
        clients.ask(Join(senders), Done, deadline_s)
        start = time.time() + 0.3
        clients.send(Step(1, rate_per_s, start, duration_s, start + duration_s + deadline_s))
        tallies = clients.tallies(1, deadline_s, 2 * deadline_s + duration_s)

    acked = {seq for tally in tallies for seq in tally.acked}
    assert len(acked) == rate_per_s * duration_s
    for tally in tallies:
        assert tally.unanswered == 0
        assert tally.open_at_end == tally.connections == connections // 2
        assert tally.counts == dict.fromkeys(acked, tally.connections)
        assert tally.out_of_order == 0
