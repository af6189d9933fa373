"""Fixtures of the integration tests: the persistence actor alone (`tree`,
`persistence`), and `untroubled` for modules whose every test must leave the
server's tree without a crash, a kill or a restart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pykka
import pytest

from chatter.persistence import NAME, Persistence
from chatter.persistence_actor import PersistenceActor
from supervision import ChildSpec, Registry, Supervisor, start_link

if TYPE_CHECKING:
    from tests.harness.server import ChatServer

TIMEOUT_S = 10


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
