"""`supervision.Future` on its own: pykka's future API, callbacks, await, the loop guard."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

import pykka
import pytest

from supervision import BlockingCallOnLoopError, Future

TIMEOUT_S = 5.0

T = TypeVar("T")


class Calls:
    """Records the futures a done-callback was called with, and in which thread."""

    def __init__(self) -> None:
        self.futures: list[Future[int]] = []
        self.threads: list[int] = []
        self.called = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, future: Future[int]) -> None:
        with self._lock:
            self.futures.append(future)
            self.threads.append(threading.get_ident())
        self.called.set()


def set_from_thread_when(
    future: Future[int], go: threading.Event, value: int | BaseException
) -> threading.Thread:
    """A thread that waits for `go` and then settles `future` with `value`."""

    def settle() -> None:
        if not go.wait(TIMEOUT_S):
            return
        if isinstance(value, BaseException):
            future.set_exception((type(value), value, None))
        else:
            future.set(value)

    thread = threading.Thread(target=settle, name="future-setter")
    thread.start()
    return thread


def test_get_returns_the_value_set() -> None:
    future: Future[int] = Future()

    future.set(42)

    assert future.done()
    assert future.get() == 42
    assert future.get(timeout=0) == 42  # a value can be read many times


def test_set_without_value_sets_none() -> None:
    future: Future[None] = Future()

    future.set()

    assert future.get() is None


def test_get_raises_the_exception_set_from_an_except_block() -> None:
    future: Future[int] = Future()
    try:
        raise ValueError("boom")
    except ValueError:
        future.set_exception()

    assert future.done()
    with pytest.raises(ValueError, match="boom"):
        future.get()
    with pytest.raises(ValueError, match="boom"):  # and again
        future.get()


def test_get_raises_the_exception_set_from_an_exc_info_tuple() -> None:
    future: Future[int] = Future()
    error = KeyError("missing")

    future.set_exception((KeyError, error, None))

    with pytest.raises(KeyError) as raised:
        future.get()
    assert raised.value is error


def test_set_exception_with_only_a_type_raises_an_instance_of_it() -> None:
    future: Future[int] = Future()

    future.set_exception((LookupError, None, None))

    with pytest.raises(LookupError):
        future.get()


def test_get_with_timeout_on_a_future_never_set_raises_timeout() -> None:
    future: Future[int] = Future()

    with pytest.raises(pykka.Timeout):
        future.get(timeout=0.01)
    assert not future.done()


def test_get_blocks_until_another_thread_sets_the_value() -> None:
    future: Future[int] = Future()
    go = threading.Event()
    setter = set_from_thread_when(future, go, 7)

    go.set()
    assert future.get(timeout=TIMEOUT_S) == 7
    setter.join(TIMEOUT_S)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("set", "set"),
        ("set", "set_exception"),
        ("set_exception", "set"),
        ("set_exception", "set_exception"),
    ],
)
def test_settling_a_future_twice_raises_and_keeps_the_first_outcome(
    first: str, second: str
) -> None:
    future: Future[int] = Future()
    error = RuntimeError("first")
    settle: dict[str, Callable[[], None]] = {
        "set": lambda: future.set(1),
        "set_exception": lambda: future.set_exception((RuntimeError, error, None)),
    }

    settle[first]()
    with pytest.raises(queue.Full):  # pykka's signal for a future set twice
        settle[second]()

    if first == "set":
        assert future.get() == 1
    else:
        with pytest.raises(RuntimeError, match="first"):
            future.get()


def test_done_callback_added_before_completion_runs_once_on_set() -> None:
    future: Future[int] = Future()
    calls = Calls()

    future.add_done_callback(calls)
    assert calls.futures == []

    future.set(3)

    assert calls.futures == [future]
    assert calls.futures[0].get() == 3


def test_done_callback_added_after_completion_runs_at_once() -> None:
    future: Future[int] = Future()
    future.set(4)
    calls = Calls()

    future.add_done_callback(calls)

    assert calls.futures == [future]
    assert future.get() == 4


def test_done_callback_runs_on_exception_too() -> None:
    future: Future[int] = Future()
    calls = Calls()
    future.add_done_callback(calls)

    future.set_exception((ValueError, ValueError("bad"), None))

    assert calls.futures == [future]
    with pytest.raises(ValueError, match="bad"):
        calls.futures[0].get()


def test_every_done_callback_runs_exactly_once_in_order_added() -> None:
    future: Future[int] = Future()
    order: list[str] = []
    future.add_done_callback(lambda _: order.append("a"))
    future.add_done_callback(lambda _: order.append("b"))

    future.set(1)
    future.add_done_callback(lambda _: order.append("c"))
    with pytest.raises(queue.Full):
        future.set(2)  # a refused second set runs no callback again

    assert order == ["a", "b", "c"]


def test_done_callback_runs_in_the_thread_that_sets_the_future() -> None:
    future: Future[int] = Future()
    calls = Calls()
    future.add_done_callback(calls)
    go = threading.Event()
    setter = set_from_thread_when(future, go, 9)

    go.set()
    assert calls.called.wait(TIMEOUT_S)
    setter.join(TIMEOUT_S)

    assert calls.threads == [setter.ident]
    assert future.get() == 9


def test_failing_done_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    future: Future[int] = Future()
    calls = Calls()

    def fail(_: Future[int]) -> None:
        raise RuntimeError("callback broke")

    future.add_done_callback(fail)
    future.add_done_callback(calls)
    with caplog.at_level(logging.ERROR, logger="supervision.future"):
        future.set(5)  # the setter is not hurt by the failing callback

    assert calls.futures == [future]
    assert future.get() == 5
    failures = [r for r in caplog.records if r.exc_info and "callback broke" in str(r.exc_info[1])]
    assert len(failures) == 1


def test_failing_done_callback_added_after_completion_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    future: Future[int] = Future()
    future.set(5)

    def fail(_: Future[int]) -> None:
        raise RuntimeError("late callback broke")

    with caplog.at_level(logging.ERROR, logger="supervision.future"):
        future.add_done_callback(fail)

    assert any("late callback broke" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_done_callback_of_a_map_derived_future_runs_once_the_source_is_set() -> None:
    source: Future[int] = Future()
    doubled = source.map(lambda x: x * 2)
    assert isinstance(doubled, Future)
    calls = Calls()

    doubled.add_done_callback(calls)
    source.set(21)

    assert calls.futures == [doubled]
    assert doubled.get() == 42


def test_callbacks_added_from_many_threads_while_it_is_set_each_run_exactly_once() -> None:
    threads_n, per_thread = 8, 50
    future: Future[int] = Future()
    counts: list[int] = [0] * (threads_n * per_thread)
    lock = threading.Lock()
    barrier = threading.Barrier(threads_n + 1)

    def count(index: int) -> Callable[[Future[int]], None]:
        def callback(_: Future[int]) -> None:
            with lock:
                counts[index] += 1

        return callback

    def add_callbacks(first: int) -> None:
        barrier.wait(TIMEOUT_S)
        for index in range(first, first + per_thread):
            future.add_done_callback(count(index))

    adders = [
        threading.Thread(target=add_callbacks, args=(n * per_thread,)) for n in range(threads_n)
    ]
    for adder in adders:
        adder.start()
    barrier.wait(TIMEOUT_S)
    future.set(1)
    for adder in adders:
        adder.join(TIMEOUT_S)

    assert counts == [1] * (threads_n * per_thread)


def test_await_suspends_until_another_thread_sets_the_value() -> None:
    async def scenario() -> tuple[bool, int]:
        future: Future[int] = Future()
        go = threading.Event()
        setter = set_from_thread_when(future, go, 11)
        # `go` is set by the loop only once the awaiting coroutine has suspended,
        # so the value cannot be there when the await starts.
        asyncio.get_running_loop().call_soon(go.set)
        done_before = future.done()
        value = await asyncio.wait_for(_await(future), TIMEOUT_S)
        setter.join(TIMEOUT_S)
        return done_before, value

    done_before, value = asyncio.run(scenario())

    assert done_before is False
    assert value == 11


def test_await_keeps_the_loop_running_while_waiting() -> None:
    async def scenario() -> list[str]:
        future: Future[int] = Future()
        order: list[str] = []
        go = threading.Event()
        setter = set_from_thread_when(future, go, 1)

        async def other_task() -> None:
            # Runs while the waiter is suspended, then has the value set off-loop.
            order.append("other task ran")
            go.set()

        async def waiter() -> None:
            order.append(f"got {await future}")

        await asyncio.wait_for(asyncio.gather(waiter(), other_task()), TIMEOUT_S)
        setter.join(TIMEOUT_S)
        return order

    assert asyncio.run(scenario()) == ["other task ran", "got 1"]


def test_await_raises_the_exception_set_from_another_thread() -> None:
    async def scenario() -> None:
        future: Future[int] = Future()
        go = threading.Event()
        set_from_thread_when(future, go, ValueError("remote failure"))
        asyncio.get_running_loop().call_soon(go.set)
        await asyncio.wait_for(_await(future), TIMEOUT_S)

    with pytest.raises(ValueError, match="remote failure"):
        asyncio.run(scenario())


def test_await_of_a_done_future_returns_at_once() -> None:
    future: Future[int] = Future()
    future.set(12)

    async def scenario() -> int:
        return await future

    assert asyncio.run(scenario()) == 12


def test_await_of_a_map_derived_future_returns_the_mapped_value() -> None:
    async def scenario() -> int:
        source: Future[int] = Future()
        doubled = source.map(lambda x: x * 2)
        go = threading.Event()
        set_from_thread_when(source, go, 21)
        asyncio.get_running_loop().call_soon(go.set)
        return await asyncio.wait_for(_await(doubled), TIMEOUT_S)

    assert asyncio.run(scenario()) == 42


def test_await_of_a_join_derived_future_returns_every_value() -> None:
    async def scenario() -> list[int]:
        first: Future[int] = Future()
        second: Future[int] = Future()
        both = first.join(second)
        go = threading.Event()
        set_from_thread_when(first, go, 1)
        set_from_thread_when(second, go, 2)
        asyncio.get_running_loop().call_soon(go.set)
        return list(await asyncio.wait_for(_await(both), TIMEOUT_S))

    assert asyncio.run(scenario()) == [1, 2]


def test_get_on_a_loop_thread_before_the_value_is_there_raises_blocking_call_error() -> None:
    future: Future[int] = Future()

    async def scenario() -> None:
        with pytest.raises(BlockingCallOnLoopError):
            future.get()
        with pytest.raises(BlockingCallOnLoopError):
            future.get(timeout=1.0)

    asyncio.run(scenario())
    assert not future.done()


def test_get_on_a_loop_thread_of_a_map_derived_future_not_ready_raises_blocking_call_error() -> (
    None
):
    source: Future[int] = Future()
    derived = source.map(lambda x: x + 1)

    async def scenario() -> None:
        with pytest.raises(BlockingCallOnLoopError):
            derived.get()

    asyncio.run(scenario())


def test_get_on_a_loop_thread_of_a_done_future_returns_the_value() -> None:
    future: Future[int] = Future()
    future.set(8)

    async def scenario() -> int:
        return future.get()

    assert asyncio.run(scenario()) == 8


def test_get_on_a_loop_thread_of_a_failed_future_raises_its_exception() -> None:
    future: Future[int] = Future()
    future.set_exception((KeyError, KeyError("gone"), None))

    async def scenario() -> int:
        return future.get()

    with pytest.raises(KeyError):
        asyncio.run(scenario())


def test_is_a_pykka_future() -> None:
    future: Future[int] = Future()

    assert isinstance(future, pykka.Future)
    assert not future.done()


async def _await(future: pykka.Future[T]) -> T:
    """A coroutine around `await future`, for `asyncio.wait_for`."""
    return await future


def test_done_callback_on_a_future_computed_only_on_get_is_refused() -> None:
    future: Future[int] = Future()
    future.set_get_hook(lambda timeout: 42)
    with pytest.raises(TypeError, match="computes its value only on get"):
        future.add_done_callback(lambda f: None)
    assert future.get() == 42


def test_filter_and_reduce_derive_from_the_value_once_it_is_set() -> None:
    source: Future[Iterable[int]] = Future()
    evens = source.filter(lambda x: x % 2 == 0)
    total = source.reduce(lambda acc, x: acc + x, 100)
    assert not evens.done()
    source.set([1, 2, 3, 4])
    assert list(evens.get()) == [2, 4]
    assert total.get() == 110


def test_a_derived_future_fails_with_what_its_function_raised() -> None:
    source: Future[int] = Future()
    broken = source.map(lambda x: x // 0)
    source.set(1)
    with pytest.raises(ZeroDivisionError):
        broken.get(timeout=TIMEOUT_S)


def test_only_supervision_futures_can_be_joined() -> None:
    ours: Future[int] = Future()
    with pytest.raises(TypeError, match="can only join supervision futures"):
        ours.join(pykka.ThreadingFuture())


def test_await_of_a_future_computed_only_on_get_computes_it_off_the_loop() -> None:
    future: Future[int] = Future()
    threads: list[int] = []

    def compute(timeout: float | None) -> int:
        threads.append(threading.get_ident())
        return 42

    future.set_get_hook(compute)

    async def scenario() -> tuple[int, int]:
        return await future, threading.get_ident()

    value, loop_thread = asyncio.run(scenario())
    assert value == 42
    assert len(threads) == 1
    assert threads[0] != loop_thread  # in an executor: the loop was not blocked


def test_an_await_given_up_before_the_value_came_is_not_woken_when_it_comes() -> None:
    future: Future[int] = Future()

    async def scenario() -> bool:
        waiting = asyncio.ensure_future(_await(future))
        await asyncio.sleep(0)  # let it start waiting
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        future.set(1)  # wakes the cancelled waiter: nothing to do
        await asyncio.sleep(0)  # let the wake-up run
        return waiting.cancelled()

    assert asyncio.run(scenario())


def _condition_of(future: Future[int]) -> threading.Condition | None:
    return future._condition


def test_a_future_holds_a_condition_only_while_someone_waits() -> None:
    future: Future[int] = Future()
    assert _condition_of(future) is None  # a callback or an await needs none
    waiter = threading.Thread(target=future.get, kwargs={"timeout": 5})
    waiter.start()
    for _ in range(5_000):  # until the waiter has made it (at most 5 s)
        if _condition_of(future) is not None:
            break
        waiter.join(0.001)
    assert _condition_of(future) is not None
    future.set(1)
    waiter.join(5)
    assert _condition_of(future) is None  # dropped once done
