"""pykka's internals that supervision relies on are still the ones it was checked against.

`supervision._pykka` is the one module that uses what pykka does not document
as public (its docstring lists each internal and what it is for). When an
upgrade of pykka changes one of them, these tests fail and name it, so that
the upgrade is read against `_pykka` first, instead of showing up as a hang
or a lost message in some supervisor test far away.

Each pykka function relied on is fingerprinted: a hash of its body with
docstrings and annotations left out, so that a change of wording or typing
passes and a change of behaviour does not. The fingerprints are those of every
pykka release from 4.1.0 to 4.5.0 (`supervision._pykka.CHECKED_VERSIONS`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.metadata
import inspect
import textwrap
from collections.abc import Callable
from typing import Any, cast

import pykka
import pytest

from supervision import _pykka

PYKKA_VERSION = importlib.metadata.version("pykka")

FINGERPRINTS: dict[str, set[str]] = {
    # Called by every runtime, or overridden by `_pykka.HookedActor`:
    "pykka._actor.Actor.start": {"513d88a0b7c0"},
    "pykka._actor.Actor.__init__": {"cc7a62162f96"},
    "pykka._actor.Actor._stop": {"22206dfc0374"},
    "pykka._actor.Actor._actor_loop": {"a115c6c70e12"},
    "pykka._actor.Actor._actor_loop_setup": {"bd8d37efdfcd"},
    "pykka._actor.Actor._actor_loop_teardown": {"3f02094c0637"},
    "pykka._actor.Actor._handle_failure": {"c626c39ce85f"},
    "pykka._actor.Actor._handle_receive": {"3e5085facbd9"},
    # Copied, one message at a time, by `_pykka.DrivenActor._run_message`:
    "pykka._actor.Actor._actor_loop_running": {"49fcd1b29ac1"},
    # How messages reach an inbox (as envelopes), and stop requests with them:
    "pykka._ref.ActorRef.__init__": {"b93a5339ef3c", "1bd0df0d5c95"},  # 4.4.2: a weakref
    "pykka._ref.ActorRef.is_alive": {"b9b0b0925164"},
    "pykka._ref.ActorRef.tell": {"b5a1f124f949"},
    "pykka._ref.ActorRef.ask": {"b29306c73ff4"},
    "pykka._ref.ActorRef.stop": {"d0569bfcb2a2", "0f7a5c262643"},  # 4.4: a cast
    "pykka._envelope.Envelope.__init__": {"c50db1e4a250"},
    # The thread runtime's loop:
    "pykka._threading.ThreadingActor._start_actor_loop": {
        "dcff4425f82c",
        "e414f8625fdc",  # 4.4.2: thread names
    },
    # Futures computed on get():
    "pykka._future.Future.__init__": {"96f8ec77be50", "0a8f745d3d52"},  # 4.3: _Unset
    "pykka._future.Future.get": {"6eb62d342540", "34429b9387e3"},  # 4.3: _Unset
    "pykka._future.Future.set_get_hook": {"5836d90e855c"},
}


class _WithoutAnnotations(ast.NodeTransformer):
    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.returns = None
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.Assign | None:
        if node.value is None:
            return None
        return ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)


def fingerprint(function: Callable[..., Any]) -> str:
    """A hash of the function's body, leaving out its docstring and annotations."""
    definition = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    assert isinstance(definition, ast.FunctionDef)
    body = definition.body
    if ast.get_docstring(definition) is not None:
        body = body[1:]
    statements = [_WithoutAnnotations().visit(statement) for statement in body]
    text = "\n".join(ast.unparse(statement) for statement in statements if statement is not None)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolve(qualified_name: str) -> Callable[..., Any]:
    module_name, class_name, attribute = qualified_name.rsplit(".", 2)
    try:
        owner = getattr(importlib.import_module(module_name), class_name)
        function: Callable[..., Any] = inspect.getattr_static(owner, attribute)
    except (ImportError, AttributeError) as error:
        pytest.fail(_changed(qualified_name, f"it is gone ({error})"))
    return function


def _changed(qualified_name: str, how: str) -> str:
    return (
        f"pykka {PYKKA_VERSION} changed {qualified_name}: {how}. supervision/_pykka.py "
        f"relies on it and was checked against pykka {_pykka.CHECKED_VERSIONS} only. "
        "Read the new pykka against the table in _pykka's docstring, adapt _pykka.py "
        "(and CHECKED_VERSIONS), then add the new fingerprint here."
    )


@pytest.mark.parametrize("qualified_name", sorted(FINGERPRINTS))
def test_a_pykka_internal_relied_on_is_as_checked(qualified_name: str) -> None:
    function = resolve(qualified_name)
    if isinstance(function, classmethod | staticmethod):
        function = function.__func__
    found = fingerprint(function)
    assert found in FINGERPRINTS[qualified_name], _changed(
        qualified_name, f"its body's fingerprint is now {found!r}"
    )


HOOK_SIGNATURES = {
    "_actor_loop_setup": ["self"],
    "_actor_loop_teardown": ["self"],
    "_actor_loop_running": ["self"],
    "_handle_receive": ["self", "message"],
    "_handle_failure": ["self", "exception_type", "exception_value", "traceback"],
    "_stop": ["self"],
    "_start_actor_loop": ["self"],
    "_create_actor_inbox": [],
    "_create_future": [],
}


@pytest.mark.parametrize("name", sorted(HOOK_SIGNATURES))
def test_the_actor_methods_overridden_keep_their_names_and_parameters(name: str) -> None:
    qualified_name = f"pykka._actor.Actor.{name}"
    method = resolve(qualified_name)
    if isinstance(method, classmethod | staticmethod):
        method = method.__func__
    parameters = list(inspect.signature(method).parameters)
    assert parameters == HOOK_SIGNATURES[name], _changed(
        qualified_name, f"its parameters are now {parameters}"
    )


def test_envelopes_futures_and_stop_requests_look_as_relied_on() -> None:
    reply: pykka.Future[Any] = pykka.ThreadingFuture()
    one = _pykka.envelope("hello", reply_to=reply)
    assert (one.message, one.reply_to) == ("hello", reply), _changed(
        "pykka._envelope.Envelope", "its message and reply_to are not the ones given"
    )
    assert pykka.ThreadingFuture()._get_hook is None, _changed(
        "pykka.Future._get_hook", "a new future does not start without a get hook"
    )
    from pykka.messages import _ActorStop

    assert _ActorStop() == _ActorStop(), _changed("pykka.messages._ActorStop", "it changed")


def test_an_actor_ref_puts_envelopes_into_the_actors_own_inbox() -> None:
    class Recording(_pykka.HookedActor):
        _inbox_class = _Recorded
        _future_class = pykka.ThreadingFuture

        def _start_actor_loop(self) -> None:
            raise AssertionError("never started: only what reaches its inbox is looked at")

    actor = Recording()
    inbox = _pykka.inbox_of(actor)
    assert isinstance(inbox, _Recorded), _changed(
        "pykka.Actor.actor_inbox", "it is not the inbox _create_actor_inbox made"
    )
    assert cast("object", actor.actor_ref.actor_inbox) is inbox, _changed(
        "pykka.ActorRef.actor_inbox", "it is not its actor's inbox"
    )
    actor.actor_ref.tell("told")
    asked = actor.actor_ref.ask("asked", block=False)
    assert [(e.message, e.reply_to) for e in inbox.put_in] == [
        ("told", None),
        ("asked", asked),
    ], _changed("pykka.ActorRef.tell/ask", "they no longer put envelopes into the inbox")


class _Recorded:
    """An inbox that only records what is put into it."""

    def __init__(self) -> None:
        self.put_in: list[_pykka.Envelope] = []

    def put(self, envelope: _pykka.Envelope, /) -> None:
        self.put_in.append(envelope)

    def qsize(self) -> int:
        return len(self.put_in)

    def close(self) -> list[_pykka.Envelope]:
        return []
