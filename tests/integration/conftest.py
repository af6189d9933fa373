"""Fixtures of the integration tests that drive the persistence actor alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from chatter.persistence import NAME, Persistence
from chatter.persistence_actor import PersistenceActor
from supervision import ChildSpec, Registry, Supervisor, start_link

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
