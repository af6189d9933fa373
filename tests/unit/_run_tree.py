"""A program run by test_application: a small tree under `supervision.run`.

python -m tests.unit._run_tree steady      runs until SIGTERM
python -m tests.unit._run_tree crashloop   a child that crashes on every start
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

from supervision import ChildSpec, Supervisor, ThreadActor, inject_crash, run


class Chatty(ThreadActor):
    """Says when it starts and stops; in a crash loop, crashes right after starting."""

    def __init__(self, name: str, crash: bool) -> None:
        super().__init__()
        self.name, self.crash = name, crash

    def on_start(self) -> None:
        print(f"start {self.name}", flush=True)
        if self.crash:
            inject_crash(self.actor_ref)

    def on_stop(self) -> None:
        print(f"stop {self.name}", flush=True)

    def on_receive(self, message: Any) -> Any:
        return None


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    crash = sys.argv[1] == "crashloop"
    children = [
        ChildSpec(name, functools.partial(Chatty.start, name, crash and name == "b"))
        for name in ("a", "b", "c")
    ]
    return run(Supervisor.child_spec("root", children))


if __name__ == "__main__":
    sys.exit(main())
