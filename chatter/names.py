"""The name rules: which sessions hold which name, as plain data.

`NameTable` is what the presence actor knows, without the actor: no messages,
no threads, no clock, so each rule is tested on its own (tests/unit/test_names.py).

- A name is held by one person, and while it is held nobody else may take
  it, nor a look-alike of it (the same UTS #39 skeleton,
  `chatter.usernames.confusable_keys`).
- Several sessions may hold one name together: a claim `by_token` (the
  claimant proved with its token that the name is its own: another tab of
  the same browser, or a reconnect) of the very same name (not a look-alike)
  joins those holding it. A claim by name alone is refused while anyone holds it.
- A claim holds the name at once; the session counts as online only once it
  `confirm`s (the user is recorded). A held, unconfirmed name is already
  taken for others. The name is online while any of its holders is confirmed:
  it comes online with the first and goes offline with the last.
- A session holds one name: claiming another lets the first go.
- `leave` lets the name go for every session holding it (a Leave in one tab).
- After a restart, sessions report what they held (`restore`); a report never
  displaces another session's confirmed name, and joins the holders of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatter.usernames import confusable_keys, username_key

__all__ = ["Grant", "Holder", "Letting", "NameTable"]


@dataclass
class Holder:
    """A session holding a name."""

    session_id: str
    session: Any
    """Whom to tell when the name is let go elsewhere (the session's actor ref)."""
    username: str
    key: str
    look_alikes: frozenset[str]
    confirmed: bool = False


@dataclass(frozen=True)
class Grant:
    """What a claim did. Granted or not (`taken_by`: the holder's spelling);
    when granted, the name the claimant let go if it went offline with it
    (`left`: announce it gone)."""

    granted: bool
    taken_by: str | None = None
    left: str | None = None


@dataclass(frozen=True)
class Letting:
    """What a release or a leave did: the name, if it went offline (`left`),
    and the other sessions that held it with the one leaving (`others`, for
    a leave: tell them)."""

    left: str | None = None
    others: tuple[Holder, ...] = ()


class NameTable:
    """Who holds which name; see the module's rules."""

    def __init__(self) -> None:
        self._by_key: dict[str, dict[str, Holder]] = {}
        self._by_look_alike: dict[str, dict[str, Holder]] = {}
        self._by_session: dict[str, Holder] = {}

    def claim(self, session_id: str, session: Any, username: str, *, by_token: bool) -> Grant:
        """Hold `username` (valid) for the session, if the rules allow it."""
        key = username_key(username)
        holder = self.holder_of(username, session_id)
        if holder is not None and not (by_token and holder.key == key):
            return Grant(granted=False, taken_by=holder.username)
        previous = self._by_session.get(session_id)
        if previous is not None and previous.key == key:
            previous.username = username  # the same name, in another spelling
            return Grant(granted=True)
        left = None
        if previous is not None:
            left = self._forget(previous)
        self._hold(session_id, session, username)
        return Grant(granted=True, left=left)

    def confirm(self, session_id: str) -> tuple[bool, str | None]:
        """The session's name is recorded: it is online now. Whether the
        session was confirmed just now, and the name if it came online with it
        (None if another holder had it online already)."""
        holder = self._by_session.get(session_id)
        if holder is None or holder.confirmed:
            return False, None
        came_online = not self._online_key(holder.key)
        holder.confirmed = True
        return True, holder.username if came_online else None

    def release(self, session_id: str) -> str | None:
        """The session lets its name go; the name, if it went offline with it."""
        holder = self._by_session.get(session_id)
        if holder is None:
            return None
        return self._forget(holder)

    def leave(self, session_id: str) -> Letting:
        """The session lets its name go for every session holding it."""
        holder = self._by_session.get(session_id)
        if holder is None:
            return Letting()
        others = tuple(h for h in self._by_key.get(holder.key, {}).values() if h is not holder)
        online = self._online_key(holder.key)
        for other in (holder, *others):
            self._forget(other)
        return Letting(holder.username if online else None, others)

    def restore(self, session_id: str, session: Any, username: str, *, confirmed: bool) -> bool:
        """Hold what a session reports it held before a restart, with the
        sessions that report the same name; False if another session holds a
        look-alike of it, confirmed or as the report is not."""
        current = self.holder_of(username, session_id)
        if current is not None and current.key != username_key(username):
            if not confirmed or current.confirmed:
                return False
            self._forget(current)
        self._hold(session_id, session, username).confirmed = confirmed
        return True

    def holds(self, session_id: str) -> bool:
        """Whether the session holds a name (confirmed or not)."""
        return session_id in self._by_session

    def holder(self, session_id: str) -> Holder | None:
        """The session's holding, if it holds a name."""
        return self._by_session.get(session_id)

    def holders(self) -> list[Holder]:
        """Every holder, confirmed or not."""
        return list(self._by_session.values())

    def holder_of(self, username: str, session_id: str | None = None) -> Holder | None:
        """Who else holds `username` or a look-alike of it (with and without
        case folding, so capital look-alikes count too): one of them, a
        holder of another name first; None if nobody but `session_id` does."""
        key = username_key(username)
        found = None
        for look_alike in confusable_keys(username):
            for holder in self._by_look_alike.get(look_alike, {}).values():
                if holder.session_id != session_id:
                    if holder.key != key:
                        return holder
                    found = holder
        for holder in self._by_key.get(key, {}).values():
            if holder.session_id != session_id:
                return holder
        return found

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
        """The names online (each once, however many sessions hold it),
        sorted case-insensitively."""
        return tuple(sorted(self._online_names().values(), key=username_key))

    def online_count(self) -> int:
        return len(self._online_names())

    def _online_names(self) -> dict[str, str]:
        return {h.key: h.username for h in self._by_session.values() if h.confirmed}

    def _online_key(self, key: str) -> bool:
        return any(h.confirmed for h in self._by_key.get(key, {}).values())

    def _hold(self, session_id: str, session: Any, username: str) -> Holder:
        holder = Holder(
            session_id, session, username, username_key(username), confusable_keys(username)
        )
        self._by_key.setdefault(holder.key, {})[session_id] = holder
        for look_alike in holder.look_alikes:
            self._by_look_alike.setdefault(look_alike, {})[session_id] = holder
        self._by_session[session_id] = holder
        return holder

    def _forget(self, holder: Holder) -> str | None:
        """Forget the holder; the name, if it went offline with it."""
        was_online = self._online_key(holder.key)
        _discard(self._by_key, holder.key, holder)
        for look_alike in holder.look_alikes:
            _discard(self._by_look_alike, look_alike, holder)
        if self._by_session.get(holder.session_id) is holder:
            del self._by_session[holder.session_id]
        if was_online and not self._online_key(holder.key):
            return holder.username
        return None


def _discard(index: dict[str, dict[str, Holder]], key: str, holder: Holder) -> None:
    holders = index.get(key)
    if holders is not None and holders.get(holder.session_id) is holder:
        del holders[holder.session_id]
        if not holders:
            del index[key]
