"""``chatter chaos``: kill actors of a running server through its supervision API.

    chatter chaos kill room                      one actor, by id
    chatter chaos random --every 2 --for 30      a random actor every 2 s, for 30 s

It talks HTTP to ``GET /api/supervision`` and ``POST /api/supervision/kill``,
so it works against any Chatter server whose chaos switch is on (see
docs/SUPERVISION.md), and prints each thing it did. Each kill says it was
asked by ``chatter chaos``: the server logs one WARNING line naming it.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["ChaosError", "actor_ids", "kill", "kill_randomly"]

HTTP_TIMEOUT_S = 10.0
ASKER = "chatter chaos"
"""Who the server's log says asked for each kill."""
ROOT = "root"


class ChaosError(Exception):
    """The server refused or could not be reached; the message says which."""


def _request(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except (urllib.error.URLError, OSError) as error:
        raise ChaosError(f"cannot reach {url}: {error}") from error


def actor_ids(base_url: str, *, sessions: bool = False) -> list[str]:
    """The ids of the running actors below the root (sessions only if asked)."""
    status, tree = _request(f"{base_url}/api/supervision")
    if status != 200:
        raise ChaosError(f"GET /api/supervision answered {status}: {tree}")
    return [
        node["id"]
        for node in _walk(tree)
        if node["alive"]
        and node["id"] != ROOT
        and (sessions or not node["id"].startswith("session-"))
    ]


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("children", ()):
        yield from _walk(child)


def kill(base_url: str, actor_id: str) -> str:
    """Kill one actor; returns what the server said. Raises `ChaosError` if refused."""
    status, answer = _request(f"{base_url}/api/supervision/kill", {"id": actor_id, "by": ASKER})
    if status != 202:
        raise ChaosError(f"killing {actor_id!r}: {status} {answer.get('message', answer)}")
    return f"killed {actor_id}"


def kill_randomly(
    base_url: str,
    *,
    every_s: float,
    for_s: float,
    sessions: bool = False,
    rng: random.Random | None = None,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Kill a random actor every `every_s` seconds for `for_s` seconds; returns
    how many were killed. Bounded in count and time by its arguments."""
    rng = rng or random.Random()
    deadline = clock() + for_s
    killed = 0
    while clock() < deadline:
        candidates = actor_ids(base_url, sessions=sessions)
        if candidates:
            target = rng.choice(candidates)
            try:
                say(f"{time.strftime('%H:%M:%S')} {kill(base_url, target)}")
                killed += 1
            except ChaosError as error:
                say(f"{time.strftime('%H:%M:%S')} {error}")
        sleep(max(0.0, min(every_s, deadline - clock())))
    say(f"killed {killed} actor(s) in {for_s:g} s")
    return killed
