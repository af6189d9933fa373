"""The upgrade's answer: the headers every HTTP response carries, on a 101 too."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

from tests.harness.raw import raw_socket
from tests.harness.server import ChatServer
from web import guarded_socket


def test_the_upgrade_answer_says_the_date_and_the_server(server: ChatServer) -> None:
    before = int(time.time())
    with raw_socket(server.port) as raw:
        assert raw.upgrade() == 101
        after = time.time()
    date = parsedate_to_datetime(raw.headers["date"])
    assert date.tzname() == "UTC"
    assert before <= date.timestamp() <= after
    assert raw.headers["server"].startswith("TornadoServer/")


def test_the_date_is_formatted_again_once_its_second_has_passed() -> None:
    guarded_socket._date = (int(time.time()) - 5, "a second long gone")
    now = time.time()
    date = guarded_socket.http_date()
    assert date != "a second long gone"
    assert abs(parsedate_to_datetime(date).timestamp() - now) <= 1
    assert guarded_socket.http_date() in (date, guarded_socket._date[1])
