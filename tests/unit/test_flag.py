"""Flag: an Event's set, is_set and wait, without a Condition until someone waits."""

from __future__ import annotations

import threading

from supervision._flag import Flag


def test_a_flag_set_before_anyone_waits_never_makes_an_event() -> None:
    flag = Flag()
    assert not flag.is_set()
    flag.set()
    assert flag.is_set()
    assert flag.wait(0)
    assert flag._event is None


def test_a_waiter_is_woken_by_a_set_from_another_thread() -> None:
    flag = Flag()
    waiting = threading.Event()
    woken: list[bool] = []

    def wait() -> None:
        waiting.set()
        woken.append(flag.wait(5))

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert waiting.wait(5)
    flag.set()
    waiter.join(5)
    assert woken == [True]


def test_a_wait_that_times_out_says_so() -> None:
    assert Flag().wait(0.01) is False
