"""The partition supervisor: one supervisor's work spread over several alike ones.

A `DynamicSupervisor` is one actor, and it answers one request at a time: when
a crowd of connections arrives, every `start_child` queues behind the others,
and every exit is one more message in the same inbox. Elixir's
``PartitionSupervisor`` is the usual way out, and this is its shape here:
start N copies of the supervisor (the *partitions*), and let a key pick the
copy that serves a request, so that N inboxes share the load and one crowd
waits in N queues::

    sessions          PartitionSupervisor, one_for_one
     ├─ sessions.0    DynamicSupervisor      ← start_child(..., key "session-7")
     │   └─ session-7
     └─ sessions.1    DynamicSupervisor      ← start_child(..., key "session-8")
         └─ session-8

Nothing else changes: each partition is an ordinary child of the partition
supervisor, started from the spec that ``partition(id)`` returns, restarted by
one_for_one under the usual restart intensity, stopped in reverse order. A
request reaches its partition without asking the partition supervisor
anything: `Partitions` says, from the key alone, which partition serves it, and
a partition started with ``name=`` its id is found in the registry under it
(as Elixir's ``{:via, PartitionSupervisor, {name, key}}`` is found in an ETS
table). The same key always picks the same partition, so everything about one
key is serialised by one supervisor.

The options, as Elixir names them:

============  ==========================================================  =====================
option        meaning                                                     default
============  ==========================================================  =====================
``partition`` ``partition(id) -> ChildSpec``: the spec of the partition   (required)
              with that id; it must use that id (and, to be found by key,
              register under it: ``name=id``)
``partitions``how many partitions                                         ``os.cpu_count()``
``name``      the partition supervisor's id; partition *i* is ``name.i``  ``"partitions"``
============  ==========================================================  =====================

and any option of `Supervisor` (``registry``, ``events``, ``max_restarts``...),
except ``strategy``: partitions are independent, so it is one_for_one.

What a partition holds, it holds alone: a `DynamicSupervisor`'s
``max_children`` bounds that partition, not the whole. Keys spread evenly
(an integer key by its remainder, a string by its CRC-32), but not exactly: to
bound the total, bound it before the request is made, or give each partition
room to spare.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervision.child_spec import ChildKind, ChildSpec, Restart, Shutdown
from supervision.errors import InvalidChildSpecError
from supervision.strategy import Strategy
from supervision.supervisor import Supervisor

__all__ = ["PartitionSupervisor", "Partitions", "default_partitions", "partition_index"]

PartitionKey = int | str | bytes
"""What may pick a partition: an integer, a string or bytes."""


def default_partitions() -> int:
    """One partition per CPU, as Elixir's default (``System.schedulers_online()``)."""
    return os.cpu_count() or 1


def partition_index(key: PartitionKey, count: int) -> int:
    """Which of `count` partitions serves `key`: an integer by its remainder
    (so consecutive integers take turns), a string or bytes by its CRC-32 (the
    same in every process, unlike ``hash()`` of a string)."""
    if isinstance(key, bool) or not isinstance(key, int | str | bytes):
        raise TypeError(f"a partition key must be an int, a str or bytes, got {key!r}")
    if isinstance(key, int):
        return key % count
    data = key.encode() if isinstance(key, str) else key
    return zlib.crc32(data) % count


@dataclass(frozen=True)
class Partitions:
    """Where the partitions of one partition supervisor are: `count` of them,
    partition *i* with the id ``f"{id}.{i}"``. A plain value: anyone holding it
    finds the partition of a key without asking an actor."""

    id: str
    """The partition supervisor's id."""
    count: int
    """How many partitions (at least 1)."""

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"partitions must be an int of at least 1, got {self.count!r}")

    def id_of(self, index: int) -> str:
        """The id of partition `index` (by convention, its registered name too)."""
        return f"{self.id}.{index}"

    def ids(self) -> tuple[str, ...]:
        """Every partition's id, in start order."""
        return tuple(self.id_of(index) for index in range(self.count))

    def id_for(self, key: PartitionKey) -> str:
        """The id of the partition that serves `key`."""
        return self.id_of(partition_index(key, self.count))

    def holds(self, supervisor_id: str | None) -> bool:
        """Whether `supervisor_id` is one of these partitions (say, an event's
        supervisor)."""
        return supervisor_id is not None and supervisor_id in self.ids()


class PartitionSupervisor(Supervisor):
    """A one_for_one supervisor of `partitions` alike children, each started
    from ``partition(id)``; a key picks one (see `Partitions`)."""

    def __init__(
        self,
        partition: Callable[[str], ChildSpec],
        *,
        partitions: int | None = None,
        name: str = "partitions",
        **options: Any,
    ) -> None:
        if "strategy" in options:
            raise TypeError(
                f"partition supervisor {name!r}: partitions are independent, so its "
                f"strategy is one_for_one; got strategy={options['strategy']!r}"
            )
        count = default_partitions() if partitions is None else partitions
        self.partitions = Partitions(name, count)
        """Where this supervisor's partitions are."""
        specs = []
        for partition_id in self.partitions.ids():
            spec = partition(partition_id)
            if not isinstance(spec, ChildSpec) or spec.id != partition_id:
                raise InvalidChildSpecError(
                    f"partition supervisor {name!r}: partition({partition_id!r}) must return "
                    f"a ChildSpec with id {partition_id!r}, got {spec!r}"
                )
            specs.append(spec)
        super().__init__(specs, strategy=Strategy.ONE_FOR_ONE, name=name, **options)

    @classmethod
    def child_spec(  # type: ignore[override]
        cls,
        id: str,
        partition: Callable[[str], ChildSpec],
        *,
        partitions: int | None = None,
        restart: Restart = Restart.PERMANENT,
        name: str | None = None,
        **options: Any,
    ) -> ChildSpec:
        """A spec for this partition supervisor as the child of another: kind
        supervisor, shutdown infinity, `id` its id and its partitions' prefix."""
        return ChildSpec(
            id=id,
            start=lambda: cls.start(partition, partitions=partitions, name=id, **options),
            restart=restart,
            shutdown=Shutdown.INFINITY,
            kind=ChildKind.SUPERVISOR,
            name=name,
        )
