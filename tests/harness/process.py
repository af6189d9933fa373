"""``chatter serve`` as a real process, for what only a process shows (its
signals, its exit status, its open-files limit) and for faults that end one:
started on a fixed port (so clients find it again), killed, started again."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.harness.http import healthz
from tests.harness.waiting import eventually

__all__ = ["ServeProcess", "StartServe", "free_port"]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
SERVE = [sys.executable, "-m", "web", "serve"]
_WITH_OPEN_FILES = (
    "import resource, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
    "from web.cli import main; sys.exit(main(sys.argv[3:]))"
)
"""``python -c`` that starts serve with the open-files limits given first."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServeProcess:
    """One ``python -m web serve`` after another on the same port, data
    directory (so the same token secret) and database; logs kept per run."""

    def __init__(
        self,
        database_url: str | None,
        data_dir: Path,
        port: int | None = None,
        *,
        env: dict[str, str] | None = None,
        open_files: tuple[int, int] | None = None,
        command: Sequence[str] = SERVE,
        cwd: Path = ROOT,
    ) -> None:
        """`database_url` None: the embedded database in `data_dir`. `command`
        (default ``python -m web serve`` from this checkout) runs in `cwd`."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.data_dir = data_dir
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CHATTER_") and k not in ("DATABASE_URL", "PORT", "HOST")
        }
        self._env = {
            **keep,
            **({"DATABASE_URL": database_url} if database_url else {}),
            "CHATTER_DATA_DIR": str(data_dir),
            "CHATTER_ENV": "test",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self._open_files = open_files
        self._command = list(command)
        self._cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"serve-{self.runs}.log"

    def start(self) -> dict[str, Any]:
        """Start a new run; once it answers /healthz with 200, that answer's body."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.runs += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            serve = self._command
            if self._open_files is not None:
                soft, hard = self._open_files
                serve = [sys.executable, "-c", _WITH_OPEN_FILES, str(soft), str(hard), "serve"]
            self.process = subprocess.Popen(
                [*serve, "--port", str(self.port), "--host", "127.0.0.1"],
                cwd=self._cwd,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        health: list[dict[str, Any]] = []

        def healthy() -> bool:
            # A process coming up says so no other way than by answering.
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}:\n{self.log()}")
            status, body = healthz(self.url)
            health[:] = [body]
            return status == 200

        asyncio.run(eventually(healthy, lambda: f"serve healthy:\n{self.log()}", START_TIMEOUT_S))
        return health[0]

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout_s: float = 30.0) -> int:
        """Wait for the current run to exit; its exit status."""
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """End the current run, however it is doing."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


StartServe = Callable[..., ServeProcess]
"""The `start_serve` fixture: `start_serve(database_url=None, **options)` is a
healthy `ServeProcess`, ended when the test ends."""
