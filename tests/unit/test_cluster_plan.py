"""What ``chatter cluster`` refuses before it starts anything: a plan out of
bounds, a missing haproxy, a port already taken. (Running one is
tests/integration/test_cluster_command.py.)"""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import pytest

from chatter.errors import ConfigError
from web.cluster import EXIT_FAILED, MAX_NODES, ClusterPlan, run_cluster
from web.errors import ClusterError
from web.haproxy import find_haproxy


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nodes": 0}, f"--nodes must be 1 to {MAX_NODES}, got 0"),
        ({"nodes": MAX_NODES + 1}, f"--nodes must be 1 to {MAX_NODES}, got {MAX_NODES + 1}"),
        ({"port": 0}, "the cluster's port must be 1 to 65535, got 0"),
        ({"port": 65536}, "the cluster's port must be 1 to 65535, got 65536"),
    ],
)
def test_a_plan_out_of_bounds_is_refused_naming_the_value(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        ClusterPlan(haproxy="haproxy", data_dir=tmp_path, **changes)
    assert str(refused.value) == message


def test_a_missing_haproxy_names_what_installs_it(tmp_path: Path) -> None:
    with pytest.raises(ClusterError) as missing:
        find_haproxy(str(tmp_path / "haproxy"))
    assert f"no haproxy {tmp_path / 'haproxy'}" in str(missing.value)
    assert "`make cluster` installs Debian's (scripts/ensure-haproxy)" in str(missing.value)


def test_a_named_haproxy_is_the_one_run(tmp_path: Path) -> None:
    haproxy = tmp_path / "haproxy"
    haproxy.touch(mode=0o755)
    assert find_haproxy(str(haproxy)) == str(haproxy)


def test_a_taken_port_stops_the_cluster_before_anything_starts(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        plan = ClusterPlan(haproxy="haproxy", data_dir=tmp_path / "data", port=port)

        status = run_cluster(plan, environ={}, out=out, err=err)

    assert status == EXIT_FAILED
    assert out.getvalue() == ""
    assert err.getvalue() == (
        f"chatter cluster: 127.0.0.1:{port} is taken (Address already in use):"
        " choose another with --port\n"
    )
    assert not (tmp_path / "data").exists()
