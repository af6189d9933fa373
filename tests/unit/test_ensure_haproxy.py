"""scripts/ensure-haproxy, which `make cluster` and `make test` run first: what
it decides when haproxy is there, missing and installable, or missing and not
installable.

The script runs on a `tests.harness.fake_machine.FakeMachine`: nothing is
installed, and a command it should not run fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.fake_machine import FakeMachine

SCRIPT = Path(__file__).parents[2] / "scripts" / "ensure-haproxy"

APT_AS_ROOT = ["apt-get update", "apt-get install -y haproxy"]


@pytest.fixture
def machine(tmp_path: Path) -> FakeMachine:
    return FakeMachine.made(tmp_path, SCRIPT, "usr-sbin-haproxy")


@pytest.mark.parametrize(("uid", "sudo"), [(0, None), (1000, "allowed"), (1000, None)])
def test_a_present_haproxy_is_left_alone(machine: FakeMachine, uid: int, sudo: str | None) -> None:
    machine.user(uid, sudo)
    machine.program.touch(mode=0o755)

    run = machine.run()

    assert (run.returncode, run.stdout, run.stderr, run.calls) == (0, "", "", [])


def test_a_missing_haproxy_is_installed_with_apt_as_root(machine: FakeMachine) -> None:
    machine.user(0, sudo=None)

    run = machine.run()

    assert run.returncode == 0, run.stderr
    assert run.calls == ["id -u", *APT_AS_ROOT]
    assert f"{machine.program} is missing: installing the haproxy package" in run.stdout


def test_a_missing_haproxy_is_installed_through_password_less_sudo(machine: FakeMachine) -> None:
    machine.user(1000, sudo="allowed")

    run = machine.run()

    assert run.returncode == 0, run.stderr
    assert run.calls == [
        "id -u",
        "sudo -n true",
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update",
        "apt-get update",
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy",
        "apt-get install -y haproxy",
    ]


@pytest.mark.parametrize("sudo", ["refused", None])
def test_a_missing_haproxy_that_may_not_be_installed_stops_saying_what_to_install(
    machine: FakeMachine, sudo: str | None
) -> None:
    machine.user(1000, sudo)

    run = machine.run()

    assert run.returncode == 1
    assert run.stdout == ""
    assert "    sudo apt-get install haproxy\n" in run.stderr
    assert not any(call.startswith("apt-get") for call in run.calls)


def test_without_apt_a_missing_haproxy_is_named_not_installed(machine: FakeMachine) -> None:
    machine.user(0, sudo=None, apt=False)

    run = machine.run()

    assert run.returncode == 1
    assert run.calls == []
    assert "Install haproxy (2.4 or newer) with this system's package manager" in run.stderr


def test_an_install_that_leaves_no_haproxy_fails(machine: FakeMachine) -> None:
    machine.user(0, sudo=None)
    machine.fake("apt-get", "exit 0")

    run = machine.run()

    assert run.returncode == 1
    assert run.calls == ["id -u", *APT_AS_ROOT]
    assert f"{machine.program} is still missing" in run.stderr


def test_the_default_path_is_the_one_the_makefile_and_the_cluster_use() -> None:
    from web.haproxy import HAPROXY_PATHS

    assert "haproxy=${1:-/usr/sbin/haproxy}" in SCRIPT.read_text(encoding="utf-8")
    makefile = (SCRIPT.parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "HAPROXY ?= /usr/sbin/haproxy" in makefile
    assert HAPROXY_PATHS[0] == "/usr/sbin/haproxy"
