"""The processes ``chatter cluster`` starts (`web.cluster`): each in a process
group of its own, its output relayed line by line to the cluster's stderr after
its name, and stopped with SIGTERM, then SIGKILL after a grace.

A process group of its own: a Ctrl-C at the terminal goes to the terminal's
foreground group, so only the cluster gets it, and the cluster stops its
children in order instead of each stopping at once. On Linux each child also
asks the kernel for SIGTERM when the cluster dies (``PR_SET_PDEATHSIG``), so a
cluster killed with SIGKILL, which cannot stop anything, leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TextIO

from web.errors import ClusterError

__all__ = ["RELAY_EOF_WAIT_S", "RELAY_LINE_LIMIT", "Child", "relay", "spawn"]

RELAY_LINE_LIMIT = 1024 * 1024
"""The longest output line relayed whole (a traceback's lines are far shorter)."""
RELAY_EOF_WAIT_S = 2.0
"""How long a stopped child's output may take to end: a grandchild (PostgreSQL)
could hold the pipe open after its parent is gone."""

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


@dataclass
class Child:
    """A process the cluster started and will stop."""

    name: str
    """``database``, ``node-1`` .., ``haproxy``: what its output lines and reports say."""
    process: asyncio.subprocess.Process
    essential: bool
    """Whether its exit stops the cluster (the database, haproxy) or is only reported."""
    stop_grace_s: float
    """How long it has after SIGTERM before it is killed."""
    relays: list[asyncio.Task[None]] = field(default_factory=list)
    """The tasks copying its output to the cluster's stderr."""

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    def exit_status(self) -> str:
        """How it exited, in words: ``status 1`` or ``signal SIGKILL``."""
        code = self.process.returncode
        if code is None:
            return "still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"signal {signal.Signals(-code).name}"
        return f"status {code}"

    async def stop(self, report: Callable[[str], None]) -> None:
        """SIGTERM, and SIGKILL (`report`-ed) if it has not exited within its
        grace; then let its output run out."""
        if not self.exited:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), self.stop_grace_s)
            except TimeoutError:
                report(
                    f"killing {self.name}: still running {self.stop_grace_s:.0f} s after SIGTERM"
                )
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        if self.relays:
            _, late = await asyncio.wait(self.relays, timeout=RELAY_EOF_WAIT_S)
            for relay in late:
                relay.cancel()


async def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    essential: bool,
    stop_grace_s: float,
    relay_to: TextIO,
    prefix: str,
    keep_stdout: bool = False,
) -> Child:
    """Start `argv` in a process group of its own, each line of its output
    written to `relay_to` after `prefix`. With `keep_stdout` only its stderr is
    relayed at once: the caller reads its stdout first, then relays it with
    `relay`."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if keep_stdout else asyncio.subprocess.STDOUT,
            limit=RELAY_LINE_LIMIT,
            process_group=0,
            preexec_fn=partial(_die_with_parent, os.getpid()),
        )
    except OSError as error:
        raise ClusterError(f"could not start {name} ({argv[0]}): {error}") from None
    child = Child(name, process, essential, stop_grace_s)
    output = process.stderr if keep_stdout else process.stdout
    assert output is not None
    relay(child, output, relay_to, prefix)
    return child


def relay(child: Child, stream: asyncio.StreamReader, out: TextIO, prefix: str) -> None:
    """Copy `child`'s `stream` to `out`, each line after `prefix`, until it ends."""
    child.relays.append(asyncio.create_task(_copy_lines(stream, out, prefix)))


async def _copy_lines(stream: asyncio.StreamReader, out: TextIO, prefix: str) -> None:
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line over RELAY_LINE_LIMIT: its start is dropped
            continue
        if not line:
            return
        out.write(prefix + line.decode(errors="replace").rstrip("\r\n") + "\n")
        out.flush()


def _die_with_parent(parent: int) -> None:
    """Run in a child between fork and exec: ask Linux for SIGTERM when its
    parent, the cluster, dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took hold
        os.kill(os.getpid(), signal.SIGTERM)
