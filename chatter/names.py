"""The name rules: which session holds which name, as plain data.

`NameTable` is what the presence actor knows, without the actor: no messages,
no threads, no clock, so each rule is tested on its own (tests/unit/test_names.py).

- A name is held by at most one session, and while it is held no other
  session may take it, nor a look-alike of it (the same UTS #39 skeleton,
  `chatter.usernames.confusable_keys`).
- A claim holds the name at once; it counts as online only once `confirm`ed
  (the user is recorded). A held, unconfirmed name is already taken for others.
- A session holds one name: claiming another lets the first go.
- A takeover (the claimant proved with its token that the name is its own)
  takes the very same name (not a look-alike) from the session holding it,
  and keeps it online throughout if it was.
- After a restart, sessions report what they held (`restore`); a report never
  displaces another session's confirmed name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chatter.usernames import confusable_keys, username_key

__all__ = ["Grant", "Holder", "NameTable"]


@dataclass
class Holder:
    """A session holding a name."""

    session_id: str
    session: Any
    """Whom to tell when the name is taken over (the session's actor ref)."""
    username: str
    key: str
    look_alikes: frozenset[str]
    confirmed: bool = False


@dataclass(frozen=True)
class Grant:
    """What a claim did. Granted or not (`taken_by`: the holder's spelling);
    when granted, the online name the claimant let go (`left`: announce it
    gone) and the holder it took the name from (`replaced`: tell it)."""

    granted: bool
    taken_by: str | None = None
    left: str | None = None
    replaced: Holder | None = None


class NameTable:
    """Who holds which name; see the module's rules."""

    def __init__(self) -> None:
        self._by_key: dict[str, Holder] = {}
        self._by_look_alike: dict[str, Holder] = {}
        self._by_session: dict[str, Holder] = {}

    def claim(self, session_id: str, session: Any, username: str, *, takeover: bool) -> Grant:
        """Hold `username` (valid) for the session, if the rules allow it."""
        key = username_key(username)
        holder = self.holder_of(username, session_id)
        replaced = None
        if holder is not None:
            if not (takeover and holder.key == key):
                return Grant(granted=False, taken_by=holder.username)
            self._forget(holder)
            replaced = holder
        previous = self._by_session.get(session_id)
        if previous is not None and previous.key == key:
            previous.username = username  # the same name, in another spelling
            return Grant(granted=True, replaced=replaced)
        left = None
        if previous is not None:
            self._forget(previous)
            left = previous.username if previous.confirmed else None
        new = self._hold(session_id, session, username)
        new.confirmed = replaced is not None and replaced.confirmed
        return Grant(granted=True, left=left, replaced=replaced)

    def confirm(self, session_id: str) -> str | None:
        """The session's name is recorded: it is online now. The name, if it
        just came online (None if the session holds none, or it was already)."""
        holder = self._by_session.get(session_id)
        if holder is None or holder.confirmed:
            return None
        holder.confirmed = True
        return holder.username

    def release(self, session_id: str) -> str | None:
        """The session lets its name go; the name, if it was online."""
        holder = self._by_session.get(session_id)
        if holder is None:
            return None
        self._forget(holder)
        return holder.username if holder.confirmed else None

    def restore(self, session_id: str, session: Any, username: str, *, confirmed: bool) -> bool:
        """Hold what a session reports it held before a restart; False if
        another session holds it (or a look-alike), confirmed or as the report is not."""
        current = self.holder_of(username, session_id)
        if current is not None:
            if not confirmed or current.confirmed:
                return False
            self._forget(current)
        self._hold(session_id, session, username).confirmed = confirmed
        return True

    def holds(self, session_id: str) -> bool:
        """Whether the session holds a name (confirmed or not)."""
        return session_id in self._by_session

    def holders(self) -> list[Holder]:
        """Every holder, confirmed or not."""
        return list(self._by_session.values())

    def holder_of(self, username: str, session_id: str | None = None) -> Holder | None:
        """Who else holds `username` or a look-alike of it (with and without
        case folding, so capital look-alikes count too); None if nobody but
        `session_id` does."""
        holder = self._by_key.get(username_key(username))
        if holder is not None and holder.session_id != session_id:
            return holder
        for look_alike in confusable_keys(username):
            holder = self._by_look_alike.get(look_alike)
            if holder is not None and holder.session_id != session_id:
                return holder
        return None

    def named(self, prefix: str, limit: int) -> list[Holder]:
        """The holders whose name starts with `prefix` (compared by key), at
        most `limit`, sorted by name. A scan: asked by people, not per frame."""
        start = username_key(prefix) if prefix else ""
        found = sorted(
            (holder for holder in self._by_session.values() if holder.key.startswith(start)),
            key=lambda holder: (holder.key, holder.session_id),
        )
        return found[: max(0, limit)]

    def online(self) -> tuple[str, ...]:
        """The confirmed names, sorted case-insensitively."""
        return tuple(sorted((h.username for h in self._confirmed()), key=username_key))

    def online_count(self) -> int:
        return sum(1 for _ in self._confirmed())

    def _confirmed(self) -> Iterator[Holder]:
        return (holder for holder in self._by_key.values() if holder.confirmed)

    def _hold(self, session_id: str, session: Any, username: str) -> Holder:
        holder = Holder(
            session_id, session, username, username_key(username), confusable_keys(username)
        )
        self._by_key[holder.key] = holder
        for look_alike in holder.look_alikes:
            self._by_look_alike[look_alike] = holder
        self._by_session[session_id] = holder
        return holder

    def _forget(self, holder: Holder) -> None:
        if self._by_key.get(holder.key) is holder:
            del self._by_key[holder.key]
        for look_alike in holder.look_alikes:
            if self._by_look_alike.get(look_alike) is holder:
                del self._by_look_alike[look_alike]
        if self._by_session.get(holder.session_id) is holder:
            del self._by_session[holder.session_id]
