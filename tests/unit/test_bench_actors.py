"""The actor benchmark runs end to end and reports every figure: not how fast, and
nothing that depends on how fast (a busy machine must not fail it)."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pykka
import pytest

from bench import actors as bench


def test_quick_run_reports_every_figure_for_every_runtime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads_before = set(threading.enumerate())
    out = tmp_path / "actors.json"

    assert bench.main(["--quick", "--json", str(out)]) == 0

    report = json.loads(out.read_text())
    results = {result["runtime"]: result for result in report["results"]}
    assert list(results) == list(bench.RUNTIMES)
    for name, result in results.items():
        assert result["actors"] == bench.QUICK_ACTORS, name
        assert result["messages_sent"] == bench.QUICK_MESSAGES, name
        assert result["messages_delivered"] == result["messages_sent"], name  # nothing lost
        for figure in (
            "start_up_s",
            "wall_s",
            "deliveries_per_s",
            "latency_p50_ms",
            "latency_p99_ms",
            "latency_max_ms",
            "threads",
        ):
            assert math.isfinite(result[figure]), (name, figure)
            assert result[figure] > 0, (name, figure)
        # Memory an earlier runtime freed may be reused, and the threads of the one before
        # may still be torn down while this one starts: growth can be 0, or below.
        assert math.isfinite(result["rss_growth_per_actor_kib"]), name
        assert result["latency_p50_ms"] <= result["latency_p99_ms"] <= result["latency_max_ms"]
    assert report["loop_over_thread"] > 0
    assert report["machine"]["cpus"] > 0
    assert report["machine"]["versions"]["pykka"]

    table = capsys.readouterr().out
    for name in bench.RUNTIMES:
        assert f"\n{name} " in table
    assert "LoopActor / ThreadActor deliveries/s:" in table

    # Every actor, actor thread and the loop thread are gone (threads that were already
    # there may have ended meanwhile: only new ones count).
    assert pykka.ActorRegistry.get_all() == []
    assert set(threading.enumerate()) - threads_before == set()


def test_more_actors_than_messages_still_completes() -> None:
    report = bench.run(actors=10, messages=3, runtimes=["loop", "thread"])

    assert [r.messages_delivered for r in report.results] == [3, 3]


def test_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown runtime"):
        bench.run(actors=1, messages=1, runtimes=["fibers"])
