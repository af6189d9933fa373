"""scripts/ensure-chromium, which `make test` runs before pytest: what it decides
when the browser tests' Chromium is there, missing and installable, or missing
and not installable.

The script runs on a `tests.harness.fake_machine.FakeMachine`: nothing is
installed, and a command it should not run fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.fake_machine import FakeMachine, Run

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


class Machine(FakeMachine):
    """A fake machine whose /etc/os-release can be chosen."""

    def run_on(self, os_release: str = DEBIAN) -> Run:
        """The script on this machine, whose /etc/os-release says `os_release`."""
        (self.root / "os-release").write_text(os_release, encoding="utf-8")
        return self.run(OS_RELEASE=str(self.root / "os-release"))


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    made = Machine.made(tmp_path, SCRIPT, "usr-bin-chromium")
    assert isinstance(made, Machine)
    return made


@pytest.mark.parametrize(("uid", "sudo"), [(0, None), (1000, "allowed"), (1000, None)])
def test_a_present_chromium_is_left_alone(machine: Machine, uid: int, sudo: str | None) -> None:
    machine.user(uid, sudo)
    machine.program.touch(mode=0o755)

    run = machine.run_on()

    assert (run.returncode, run.stdout, run.stderr, run.calls) == (0, "", "", [])


def test_a_missing_chromium_is_installed_with_apt_as_root(machine: Machine) -> None:
    machine.user(0, sudo=None)

    run = machine.run_on()

    assert run.returncode == 0, run.stderr
    assert run.calls == ["id -u", *APT_AS_ROOT]
    assert f"{machine.program} is missing: installing Debian's chromium package" in run.stdout


def test_a_missing_chromium_is_installed_through_password_less_sudo(machine: Machine) -> None:
    machine.user(1000, sudo="allowed")

    run = machine.run_on()

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

    run = machine.run_on()

    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr == NOT_INSTALLABLE.format(chromium=machine.program)
    assert not any(call.startswith("apt-get") for call in run.calls)


def test_an_install_that_leaves_no_chromium_fails(machine: Machine) -> None:
    machine.user(0, sudo=None)
    machine.fake("apt-get", "exit 0")

    run = machine.run_on()

    assert run.returncode == 1
    assert run.calls == ["id -u", *APT_AS_ROOT]
    assert f"{machine.program} is still missing" in run.stderr


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

    run = machine.run_on(os_release)

    assert run.returncode == 1
    assert run.calls == []
    assert "sudo snap install chromium" in run.stderr
    assert "make test CHROMIUM=<its path>" in run.stderr


def test_a_chromium_elsewhere_is_used_where_chromium_names_it(machine: Machine) -> None:
    """`make test CHROMIUM=...` checks that path, not Debian's."""
    machine.user(1000, sudo=None)
    machine.program.touch(mode=0o755)

    run = machine.run_on(UBUNTU)

    assert (run.returncode, run.calls) == (0, [])
