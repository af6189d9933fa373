"""The name rules (`chatter.names.NameTable`), with no actors and no database."""

from __future__ import annotations

from chatter.names import NameTable


def held(table: NameTable, *claims: tuple[str, str]) -> NameTable:
    """`table` with each (session, name) claimed and confirmed."""
    for session_id, name in claims:
        assert table.claim(session_id, session_id, name, takeover=False).granted
        assert table.confirm(session_id) == name
    return table


def test_a_free_name_is_granted_and_online_once_confirmed() -> None:
    table = NameTable()
    assert table.claim("s1", "ref", "Alice", takeover=False).granted
    assert table.online() == ()  # reserved, not yet recorded
    assert table.confirm("s1") == "Alice"
    assert table.online() == ("Alice",)
    assert table.confirm("s1") is None  # already online: nothing to announce


def test_a_reserved_name_is_taken_for_others_before_it_is_confirmed() -> None:
    table = NameTable()
    table.claim("s1", "ref", "alice", takeover=False)
    grant = table.claim("s2", "ref", "ALICE", takeover=False)
    assert not grant.granted
    assert grant.taken_by == "alice"


def test_a_look_alike_of_a_held_name_is_taken() -> None:
    table = held(NameTable(), ("s1", "paypal"))
    grant = table.claim("s2", "s2", "pаypal", takeover=False)  # noqa: RUF001  (Cyrillic a)
    assert (grant.granted, grant.taken_by) == (False, "paypal")


def test_claiming_another_name_lets_the_first_go_and_says_it_left() -> None:
    table = held(NameTable(), ("s1", "ann"))
    grant = table.claim("s1", "s1", "bob", takeover=False)
    assert (grant.granted, grant.left) == (True, "ann")
    assert table.holder_of("ann") is None
    assert table.online() == ()  # bob is reserved until confirmed
    assert held(NameTable(), ("s2", "ann")).online() == ("ann",)


def test_the_held_name_in_another_spelling_changes_only_the_spelling() -> None:
    table = held(NameTable(), ("s1", "eve"))
    grant = table.claim("s1", "s1", "EVE", takeover=False)
    assert (grant.granted, grant.left, grant.replaced) == (True, None, None)
    assert table.online() == ("EVE",)


def test_a_takeover_replaces_the_holder_and_keeps_the_name_online() -> None:
    table = held(NameTable(), ("old", "zoe"))
    grant = table.claim("new", "new-ref", "zoe", takeover=True)
    assert grant.granted
    assert grant.replaced is not None
    assert grant.replaced.session_id == "old"
    assert table.online() == ("zoe",)  # online throughout: nobody is told it left
    holder = table.holder_of("zoe")
    assert holder is not None
    assert holder.session_id == "new"
    assert table.release("old") is None  # the old session holds nothing any more


def test_a_takeover_never_takes_a_look_alike() -> None:
    table = held(NameTable(), ("s1", "paypal"))
    grant = table.claim("s2", "s2", "pаypal", takeover=True)  # noqa: RUF001
    assert not grant.granted


def test_release_says_whether_an_online_name_left() -> None:
    table = held(NameTable(), ("s1", "ann"))
    table.claim("s2", "s2", "bob", takeover=False)  # reserved only
    assert table.release("s1") == "ann"
    assert table.release("s2") is None
    assert table.release("nobody") is None
    assert table.online_count() == 0


def test_restoring_after_a_restart_never_displaces_a_confirmed_name() -> None:
    table = NameTable()
    assert table.restore("s1", "s1", "ann", confirmed=True)
    assert not table.restore("s2", "s2", "ANN", confirmed=True)
    assert table.restore("s3", "s3", "bob", confirmed=False)
    assert table.restore("s4", "s4", "bob", confirmed=True)  # confirmed beats reserved
    assert not table.restore("s5", "s5", "bob", confirmed=False)
    assert table.online() == ("ann", "bob")


def test_online_names_are_sorted_case_insensitively() -> None:
    table = held(NameTable(), ("s1", "bob"), ("s2", "Ann"), ("s3", "carl"))
    assert table.online() == ("Ann", "bob", "carl")
    assert table.online_count() == 3
