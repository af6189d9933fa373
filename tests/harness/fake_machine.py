"""A scratch machine for the scripts that install what the tests need
(scripts/ensure-chromium, scripts/ensure-haproxy): the script runs for real,
with a PATH holding only fakes of `id`, `sudo` and `apt-get` that record their
calls (and the real `env`), so nothing is installed and a command it should
not run fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FakeMachine", "Run", "real"]


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[str]
    """Every fake command run, in order, with its arguments."""


@dataclass(frozen=True)
class FakeMachine:
    """A scratch directory standing in for the machine `script` looks at;
    `program` is the file the script makes sure of (its first argument)."""

    root: Path
    script: Path
    program_name: str

    @classmethod
    def made(cls, root: Path, script: Path, program_name: str) -> FakeMachine:
        machine = cls(root, script, program_name)
        machine.bin.mkdir()
        os.symlink(real("env"), machine.bin / "env")
        return machine

    @property
    def program(self) -> Path:
        return self.root / self.program_name

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
        (absent); `apt` says whether apt-get exists. Installing with apt-get
        puts the program in place."""
        self.fake("id", f'[ "$1" = -u ] && echo {uid}')
        if sudo == "allowed":
            self.fake("sudo", '[ "$1" = -n ] && shift\n"$@"')
        elif sudo == "refused":
            self.fake("sudo", "echo 'sudo: a password is required' >&2\nexit 1")
        if apt:
            put_in_place = f': > "{self.program}" && "{real("chmod")}" +x "{self.program}"'
            self.fake("apt-get", f'[ "$1" = install ] && {put_in_place}\nexit 0')

    def run(self, **env: str) -> Run:
        """The script on this machine, with `env` besides the fake PATH."""
        result = subprocess.run(
            [str(self.script), str(self.program)],
            env={"PATH": str(self.bin), **env},
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


def real(command: str) -> str:
    """The path of the machine's own `command`."""
    path = shutil.which(command)
    assert path is not None, command
    return path
