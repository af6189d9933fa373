"""scripts/ensure-haproxy, which `make cluster` and `make test` run first: what
it decides when haproxy is there, missing and installable, or missing and not
installable.

The script runs for real, with a PATH holding only fakes of `id`, `sudo` and
`apt-get` that record their calls (and the real `env`), so nothing is installed
and a command it should not run fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "ensure-haproxy"

APT_AS_ROOT = ["apt-get update", "apt-get install -y haproxy"]


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[str]
    """Every fake command run, in order, with its arguments."""


@dataclass(frozen=True)
class Machine:
    """A scratch directory standing in for the machine the script looks at."""

    root: Path

    @property
    def haproxy(self) -> Path:
        return self.root / "usr-sbin-haproxy"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def fake(self, name: str, body: str) -> None:
        """A command on the script's PATH that records its call, then runs `body`."""
        script = self.bin / name
        script.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{self.root / "calls"}"\n{body}\n',
            encoding="utf-8",
        )
        script.chmod(0o755)

    def user(self, uid: int, sudo: str | None, apt: bool = True) -> None:
        """Runs as `uid`; `sudo` is "allowed" (password-less), "refused" or None
        (absent); `apt` says whether apt-get exists. Installing haproxy with
        apt-get puts it in place."""
        self.fake("id", f'[ "$1" = -u ] && echo {uid}')
        if sudo == "allowed":
            self.fake("sudo", '[ "$1" = -n ] && shift\n"$@"')
        elif sudo == "refused":
            self.fake("sudo", "echo 'sudo: a password is required' >&2\nexit 1")
        if apt:
            put_in_place = f': > "{self.haproxy}" && "{_real("chmod")}" +x "{self.haproxy}"'
            self.fake("apt-get", f'[ "$1" = install ] && {put_in_place}\nexit 0')

    def run(self) -> Run:
        result = subprocess.run(
            [str(SCRIPT), str(self.haproxy)],
            env={"PATH": str(self.bin)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        calls = self.root / "calls"
        return Run(
            result.returncode,
            result.stdout,
            result.stderr,
            calls.read_text(encoding="utf-8").splitlines() if calls.exists() else [],
        )


def _real(command: str) -> str:
    path = shutil.which(command)
    assert path is not None, command
    return path


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    chosen = Machine(tmp_path)
    chosen.bin.mkdir()
    os.symlink(_real("env"), chosen.bin / "env")
    return chosen


@pytest.mark.parametrize(("uid", "sudo"), [(0, None), (1000, "allowed"), (1000, None)])
def test_a_present_haproxy_is_left_alone(machine: Machine, uid: int, sudo: str | None) -> None:
    machine.user(uid, sudo)
    machine.haproxy.touch(mode=0o755)

    run = machine.run()

    assert (run.returncode, run.stdout, run.stderr, run.calls) == (0, "", "", [])


def test_a_missing_haproxy_is_installed_with_apt_as_root(machine: Machine) -> None:
    machine.user(0, sudo=None)

    run = machine.run()

    assert run.returncode == 0, run.stderr
    assert run.calls == ["id -u", *APT_AS_ROOT]
    assert f"{machine.haproxy} is missing: installing the haproxy package" in run.stdout


def test_a_missing_haproxy_is_installed_through_password_less_sudo(machine: Machine) -> None:
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
    machine: Machine, sudo: str | None
) -> None:
    machine.user(1000, sudo)

    run = machine.run()

    assert run.returncode == 1
    assert run.stdout == ""
    assert "    sudo apt-get install haproxy\n" in run.stderr
    assert not any(call.startswith("apt-get") for call in run.calls)


def test_without_apt_a_missing_haproxy_is_named_not_installed(machine: Machine) -> None:
    machine.user(0, sudo=None, apt=False)

    run = machine.run()

    assert run.returncode == 1
    assert run.calls == []
    assert "Install haproxy (2.4 or newer) with this system's package manager" in run.stderr


def test_an_install_that_leaves_no_haproxy_fails(machine: Machine) -> None:
    machine.user(0, sudo=None)
    machine.fake("apt-get", "exit 0")

    run = machine.run()

    assert run.returncode == 1
    assert run.calls == ["id -u", *APT_AS_ROOT]
    assert f"{machine.haproxy} is still missing" in run.stderr


def test_the_default_path_is_the_one_the_makefile_and_the_cluster_use() -> None:
    from web.haproxy import HAPROXY_PATHS

    assert "haproxy=${1:-/usr/sbin/haproxy}" in SCRIPT.read_text(encoding="utf-8")
    makefile = (SCRIPT.parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "HAPROXY ?= /usr/sbin/haproxy" in makefile
    assert HAPROXY_PATHS[0] == "/usr/sbin/haproxy"
