"""The sessions supervisor's names, for everyone who reads its events.

Sessions are started through a `supervision.PartitionSupervisor` with the id
`SESSIONS`; its partitions, the dynamic supervisors that start and watch the
session actors, are ``sessions.0``, ``sessions.1``... So a session's events
name a partition as their supervisor, and `is_sessions_partition` is how the
tree, the logs and the tests tell them from the rest.
"""

from __future__ import annotations

__all__ = ["SESSIONS", "is_sessions_partition"]

SESSIONS = "sessions"
"""The id (and registered name) of the sessions supervisor; its partitions are
``sessions.0``, ``sessions.1``... (`supervision.Partitions`)."""


def is_sessions_partition(supervisor_id: str | None) -> bool:
    """Whether `supervisor_id` is a partition of the sessions supervisor: the
    supervisor a session's events name (``sessions.2``)."""
    return supervisor_id is not None and supervisor_id.startswith(SESSIONS + ".")
