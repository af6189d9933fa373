"""`FramedRounds`: a fan-out round is framed for the wire once, for every
connection of the server, and framed as RFC 6455 says."""

from __future__ import annotations

import pytest

from web.socket import FramedRounds


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (5, b"\x81\x05"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65_535, b"\x81\x7e\xff\xff"),
        (65_536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_each_frame_goes_after_its_text_frame_header(length: int, header: bytes) -> None:
    frame = b"x" * length

    assert FramedRounds().framed((frame,)) == header + frame


def test_a_round_is_its_frames_framed_and_joined_in_order() -> None:
    assert FramedRounds().framed((b"one", b"two")) == b"\x81\x03one\x81\x03two"


def test_the_same_round_is_framed_once_for_every_connection() -> None:
    rounds = FramedRounds()
    shared = (b'{"type":"message"}',)

    first = rounds.framed(shared)

    assert rounds.framed(shared) is first


def test_another_round_with_equal_frames_is_framed_anew() -> None:
    rounds = FramedRounds()
    rounds.framed((b"a",))

    assert rounds.framed([b"b"]) == b"\x81\x01b"
    assert rounds.framed((b"a",)) == b"\x81\x01a"
