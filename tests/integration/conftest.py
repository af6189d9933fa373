"""Fixtures of the integration tests: the persistence actor alone (`tree`,
`persistence`), and `untroubled` for modules whose every test must leave the
server's tree without a crash, a kill or a restart. A failing test that ran a
``chatter cluster`` reports the cluster's log."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pykka
import pytest

from chatter.persistence import NAME, Persistence
from chatter.persistence_actor import PersistenceActor
from supervision import ChildSpec, Registry, Supervisor, start_link

if TYPE_CHECKING:
    from tests.harness.server import ChatServer

TIMEOUT_S = 10
LOG_TAIL_CHARS = 20_000
"""How much of a failing test's cluster log its report shows: the end is where the cause is."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, None]:
    """A failing test that ran a ``chatter cluster`` (a `cluster` argument
    with a `log()`) reports what the cluster wrote: a node that exited says why there."""
    outcome = yield
    report = outcome.get_result()
    log = getattr(getattr(item, "funcargs", {}).get("cluster"), "log", None)
    if report.failed and callable(log):
        report.sections.append(("cluster log", log()[-LOG_TAIL_CHARS:]))


@pytest.fixture
def tree(database: str) -> Iterator[tuple[Persistence, pykka.ActorRef[Any]]]:
    """The persistence actor on the test's database, under a root supervisor:
    the `Persistence` client that reaches it, and the root."""
    registry = Registry()
    spec = ChildSpec(NAME, lambda: PersistenceActor.start(database), name=NAME)
    root = start_link(Supervisor.child_spec("root", [spec], registry=registry))
    yield Persistence(registry), root
    root.stop(timeout=TIMEOUT_S)


@pytest.fixture
def persistence(tree: tuple[Persistence, pykka.ActorRef[Any]]) -> Persistence:
    """`tree`'s persistence client."""
    return tree[0]


@pytest.fixture
def untroubled(server: ChatServer) -> Iterator[None]:
    """After the test, the server's tree met no trouble: no child crashed, was
    killed or restarted, and no supervisor gave up (`EventLog.troubles`). A
    module takes it for every test with ``pytestmark =
    pytest.mark.usefixtures("untroubled")``."""
    yield
    assert server.log.troubles() == []
