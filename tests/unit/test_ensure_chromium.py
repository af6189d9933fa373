"""scripts/ensure-chromium, which `make test` runs before pytest: what it decides
when the browser tests' Chromium is there, missing and installable, or missing
and not installable.

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

SCRIPT = Path(__file__).parents[2] / "scripts" / "ensure-chromium"

NOT_INSTALLABLE = (
    "{chromium} is missing: the browser tests drive Debian's Chromium. Install it with\n"
    "    sudo apt-get install chromium\n"
    "and run make test again (or make test CHROMIUM=<path> for another Chromium).\n"
)

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'
MINT = 'NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n'

APT_AS_ROOT = [
    "apt-get update",
    "apt-get install -y chromium",
]


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
    def chromium(self) -> Path:
        return self.root / "usr-bin-chromium"

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

    def user(self, uid: int, sudo: str | None) -> None:
        """Runs as `uid`; `sudo` is "allowed" (password-less), "refused" or None (absent).
        Installing Chromium with apt-get puts it in place."""
        self.fake("id", f'[ "$1" = -u ] && echo {uid}')
        if sudo == "allowed":
            self.fake("sudo", '[ "$1" = -n ] && shift\n"$@"')
        elif sudo == "refused":
            self.fake("sudo", "echo 'sudo: a password is required' >&2\nexit 1")
        put_in_place = f': > "{self.chromium}" && "{_real("chmod")}" +x "{self.chromium}"'
        self.fake("apt-get", f'[ "$1" = install ] && {put_in_place}\nexit 0')

    def run(self, os_release: str = DEBIAN) -> Run:
        """The script on this machine, whose /etc/os-release says `os_release`."""
        (self.root / "os-release").write_text(os_release, encoding="utf-8")
        result = subprocess.run(
            [str(SCRIPT), str(self.chromium)],
            env={"PATH": str(self.bin), "OS_RELEASE": str(self.root / "os-release")},
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
def test_a_present_chromium_is_left_alone(machine: Machine, uid: int, sudo: str | None) -> None:
    machine.user(uid, sudo)
    machine.chromium.touch(mode=0o755)

    run = machine.run()

    assert (run.returncode, run.stdout, run.stderr, run.calls) == (0, "", "", [])


def test_a_missing_chromium_is_installed_with_apt_as_root(machine: Machine) -> None:
    machine.user(0, sudo=None)

    run = machine.run()

    assert run.returncode == 0, run.stderr
    assert run.calls == ["id -u", *APT_AS_ROOT]
    assert f"{machine.chromium} is missing: installing Debian's chromium package" in run.stdout


def test_a_missing_chromium_is_installed_through_password_less_sudo(machine: Machine) -> None:
    machine.user(1000, sudo="allowed")

    run = machine.run()

    assert run.returncode == 0, run.stderr
    assert run.calls == [
        "id -u",
        "sudo -n true",
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update",
        "apt-get update",
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium",
        "apt-get install -y chromium",
    ]


@pytest.mark.parametrize("sudo", ["refused", None])
def test_a_missing_chromium_that_may_not_be_installed_stops_saying_what_to_install(
    machine: Machine, sudo: str | None
) -> None:
    machine.user(1000, sudo)

    run = machine.run()

    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr == NOT_INSTALLABLE.format(chromium=machine.chromium)
    assert not any(call.startswith("apt-get") for call in run.calls)


def test_an_install_that_leaves_no_chromium_fails(machine: Machine) -> None:
    machine.user(0, sudo=None)
    machine.fake("apt-get", "exit 0")

    run = machine.run()

    assert run.returncode == 1
    assert run.calls == ["id -u", *APT_AS_ROOT]
    assert f"{machine.chromium} is still missing" in run.stderr


def test_the_default_path_is_the_one_the_browser_tests_launch() -> None:
    from tests.browser.conftest import DEFAULT_CHROMIUM

    assert f"chromium=${{1:-{DEFAULT_CHROMIUM}}}" in SCRIPT.read_text(encoding="utf-8")
    assert f"CHROMIUM ?= {DEFAULT_CHROMIUM}" in (SCRIPT.parents[1] / "Makefile").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize("os_release", [UBUNTU, MINT], ids=["ubuntu", "ubuntu-like"])
@pytest.mark.parametrize(("uid", "sudo"), [(0, None), (1000, "allowed")])
def test_on_ubuntu_a_missing_chromium_is_named_not_installed_with_apt(
    machine: Machine, os_release: str, uid: int, sudo: str | None
) -> None:
    """Ubuntu's apt `chromium` only installs a snap, which a container cannot run."""
    machine.user(uid, sudo)

    run = machine.run(os_release)

    assert run.returncode == 1
    assert run.calls == []
    assert "sudo snap install chromium" in run.stderr
    assert "make test CHROMIUM=<its path>" in run.stderr


def test_a_chromium_elsewhere_is_used_where_chromium_names_it(machine: Machine) -> None:
    """`make test CHROMIUM=...` checks that path, not Debian's."""
    machine.user(1000, sudo=None)
    machine.chromium.touch(mode=0o755)

    run = machine.run(UBUNTU)

    assert (run.returncode, run.calls) == (0, [])
