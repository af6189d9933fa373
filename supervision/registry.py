"""Registered names: reach an actor by what it is, not by which incarnation.

A ref points at one incarnation of an actor; after a restart it points at a
corpse. A registry maps a name (``"room"``) to the current incarnation, and the
supervisor that owns the child keeps it up to date: it suspends the name when
the child dies and re-registers it when the new incarnation has started.

Sending to a name whose actor is restarting **waits, without blocking the
sender**: the message is held, in order, and handed to the new incarnation the
moment it is registered. If none is registered within ``restart_wait_s``
(default 5 s), held asks fail with `NameUnavailableError`, held tells are
dropped with a warning in the log, and later sends raise `NameUnavailableError`
until a new incarnation registers. A name that is not registered at all, or
was unregistered because its supervisor let the child go for good (it was
terminated, or exited and is not to be restarted), raises
`NameNotRegisteredError` at once. A whole supervisor's children's names
follow the same rule: one stopped for good (``stop()``, `terminate_child`,
its own supervisor shutting down for good) unregisters them, as a name in
Erlang goes with its process; one stopped to be started again (a sibling's
restart under one_for_all or rest_for_one), or that crashes, gives up or is
killed (its supervisor may start it again), holds them, and they expire after
``restart_wait_s`` if no new incarnation comes.

Unlike Erlang, where a mailbox dies with its process, what was still waiting
in a dead incarnation's inbox is not lost either: its supervisor hands it to
`suspend` as leftovers, which go to the next incarnation before anything sent
later. Only the message being handled when the actor crashed is gone.

Groups (Erlang's ``pg``): any number of actors may `join` a group, and
`members` lists them, so that an actor can reach "every session" without
keeping the list itself, and a restarted actor finds the members again.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pykka

from supervision import _pykka
from supervision._pykka import Envelope
from supervision.errors import NameNotRegisteredError, NameTakenError, NameUnavailableError
from supervision.future import Future

__all__ = ["DEFAULT_MAX_HELD", "DEFAULT_RESTART_WAIT_S", "Registry"]

logger = logging.getLogger(__name__)

DEFAULT_RESTART_WAIT_S = 5.0
"""How long messages to a restarting name are held: one intensity period, after
which the supervisor has either restarted the child or given up."""

DEFAULT_MAX_HELD = 10_000
"""Most messages held for one restarting name; beyond it sends fail, so that a
child that never comes back cannot exhaust memory."""


@dataclass
class _Entry:
    ref: pykka.ActorRef[Any] | None
    held: deque[Envelope] = field(default_factory=deque)
    generation: int = 0
    unavailable: bool = False
    timer: threading.Timer | None = None


class Registry:
    """Thread-safe names for actors, kept current across restarts."""

    def __init__(
        self,
        restart_wait_s: float = DEFAULT_RESTART_WAIT_S,
        max_held: int = DEFAULT_MAX_HELD,
    ) -> None:
        self.restart_wait_s = restart_wait_s
        self.max_held = max_held
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._groups: dict[str, dict[str, pykka.ActorRef[Any]]] = {}
        self._members: dict[str, tuple[pykka.ActorRef[Any], ...]] = {}

    # -- looking up and sending ------------------------------------------------------

    def whereis(self, name: str) -> pykka.ActorRef[Any] | None:
        """The current incarnation's ref, or None while restarting or unknown."""
        with self._lock:
            entry = self._entries.get(name)
            return entry.ref if entry is not None else None

    def names(self) -> list[str]:
        """Every name registered or being restarted, sorted."""
        with self._lock:
            return sorted(self._entries)

    def tell(self, name: str, message: Any) -> None:
        """Send `message` to the actor registered as `name`, holding it while the
        actor restarts. Raises `NameNotRegisteredError` or `NameUnavailableError`."""
        self._send(name, _pykka.envelope(message))

    def ask(self, name: str, message: Any) -> Future[Any]:
        """Ask the actor registered as `name`; the reply, or its failure, comes
        through the returned future (see the module docs for a restarting name)."""
        future: Future[Any] = Future()
        self._send(name, _pykka.envelope(message, reply_to=future))
        return future

    def _send(self, name: str, envelope: Envelope) -> None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                raise NameNotRegisteredError(f"no actor is registered as {name!r}")
            if entry.ref is not None and entry.ref.is_alive():
                _pykka.deliver(entry.ref, envelope)
                return
            if entry.ref is not None:
                # Dead, and its supervisor has not heard yet: hold as if restarting.
                self._suspend_locked(name, entry)
            if entry.unavailable:
                raise NameUnavailableError(
                    f"{name!r} is restarting and has not come back in {self.restart_wait_s:g} s"
                )
            if len(entry.held) >= self.max_held:
                raise NameUnavailableError(f"{name!r} is restarting with {self.max_held} held")
            entry.held.append(envelope)

    # -- groups -----------------------------------------------------------------------

    def join(self, group: str, ref: pykka.ActorRef[Any]) -> None:
        """Add `ref` to `group` (again is a no-op)."""
        with self._lock:
            self._groups.setdefault(group, {})[ref.actor_urn] = ref
            self._members.pop(group, None)

    def leave(self, group: str, ref: pykka.ActorRef[Any]) -> None:
        """Take `ref` out of `group`, if it is in it."""
        with self._lock:
            members = self._groups.get(group)
            if members is not None and members.pop(ref.actor_urn, None) is not None:
                self._members.pop(group, None)

    def members(self, group: str) -> tuple[pykka.ActorRef[Any], ...]:
        """The group's members, in the order they joined. An actor that died
        without leaving may still be listed: a send to it raises ActorDeadError."""
        with self._lock:
            cached = self._members.get(group)
            if cached is None:
                cached = self._members[group] = tuple(self._groups.get(group, {}).values())
            return cached

    # -- kept up to date by supervisors ------------------------------------------------

    def register(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        """Point `name` at `ref` and deliver, in order, what was held for it."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                self._entries[name] = _Entry(ref)
                return
            if entry.ref is not None and entry.ref is not ref and entry.ref.is_alive():
                raise NameTakenError(name, entry.ref)
            self._cancel_timer(entry)
            entry.ref, entry.unavailable = ref, False
            while entry.held:
                _pykka.deliver(ref, entry.held.popleft())

    def suspend(self, name: str, leftovers: Sequence[Envelope] = ()) -> None:
        """The actor behind `name` died and is being restarted: hold sends.
        `leftovers`, what its inbox still held, go first to the next incarnation."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                entry = self._entries[name] = _Entry(None)
            self._suspend_locked(name, entry)
            entry.held.extendleft(reversed(leftovers))

    def unregister(self, name: str) -> None:
        """Forget `name`; what was held for it is failed or dropped."""
        with self._lock:
            entry = self._entries.pop(name, None)
            if entry is None:
                return
            self._cancel_timer(entry)
            held = list(entry.held)
        _fail_held(name, held, NameNotRegisteredError(f"{name!r} was unregistered"))

    def _suspend_locked(self, name: str, entry: _Entry) -> None:
        if entry.ref is None and entry.timer is not None:
            return  # already suspended
        entry.ref, entry.unavailable = None, False
        entry.generation += 1
        entry.timer = threading.Timer(
            self.restart_wait_s, self._expire, args=(name, entry.generation)
        )
        entry.timer.daemon = True
        entry.timer.start()

    def _expire(self, name: str, generation: int) -> None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.ref is not None or entry.generation != generation:
                return
            entry.unavailable, entry.timer = True, None
            held = list(entry.held)
            entry.held.clear()
        error = NameUnavailableError(f"{name!r} did not come back in {self.restart_wait_s:g} s")
        _fail_held(name, held, error)

    @staticmethod
    def _cancel_timer(entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None


def _fail_held(name: str, held: list[Envelope], error: Exception) -> None:
    dropped = sum(not _pykka.reply_error(envelope, error) for envelope in held)
    if dropped:
        logger.warning("Dropped %d message(s) held for %r: %s", dropped, name, error)
