"""The top of the tree: a stop signal stops it in order and exits 0; a root that
gives up exits non-zero with a clear log line."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _spawn(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.unit._run_tree", mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_stops_the_tree_in_reverse_order_and_exits_zero() -> None:
    process = _spawn("steady")
    assert process.stdout is not None
    started = [process.stdout.readline().strip() for _ in range(3)]
    assert started == ["start a", "start b", "start c"]
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert out.split("\n")[:3] == ["stop c", "stop b", "stop a"]
    assert "Received SIGTERM: stopping the tree" in err


def test_a_root_that_gives_up_exits_non_zero_with_a_clear_log_line() -> None:
    process = _spawn("crashloop")
    out, err = process.communicate(timeout=20)
    assert process.returncode == 1
    assert out.count("start b") == 4  # the first start and three restarts
    assert "supervisor 'root' gave up: more than 3 restarts in 5 s" in err
    assert "Root supervisor 'root' exited (shutdown: supervisor 'root' gave up" in err
    assert "exiting with status 1" in err
    assert out.strip().split("\n")[-2:] == ["stop c", "stop a"]
