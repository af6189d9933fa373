"""The name rules (`chatter.names.NameTable`), with no actors and no database."""

from __future__ import annotations

from chatter.names import NameTable


def held(table: NameTable, *claims: tuple[str, str]) -> NameTable:
    """`table` with each (session, name) claimed and confirmed."""
    for session_id, name in claims:
        assert table.claim(session_id, session_id, name, by_token=False).granted
        assert table.confirm(session_id) == (True, name)
    return table


def test_a_free_name_is_granted_and_online_once_confirmed() -> None:
    table = NameTable()
    assert table.claim("s1", "ref", "Alice", by_token=False).granted
    assert table.online() == ()  # reserved, not yet recorded
    assert table.confirm("s1") == (True, "Alice")
    assert table.online() == ("Alice",)
    assert table.confirm("s1") == (False, None)  # already online: nothing to announce


def test_a_reserved_name_is_taken_for_others_before_it_is_confirmed() -> None:
    table = NameTable()
    table.claim("s1", "ref", "alice", by_token=False)
    grant = table.claim("s2", "ref", "ALICE", by_token=False)
    assert not grant.granted
    assert grant.taken_by == "alice"


def test_a_look_alike_of_a_held_name_is_taken() -> None:
    table = held(NameTable(), ("s1", "paypal"))
    grant = table.claim("s2", "s2", "pаypal", by_token=False)  # noqa: RUF001  (Cyrillic a)
    assert (grant.granted, grant.taken_by) == (False, "paypal")


def test_claiming_another_name_lets_the_first_go_and_says_it_left() -> None:
    table = held(NameTable(), ("s1", "ann"))
    grant = table.claim("s1", "s1", "bob", by_token=False)
    assert (grant.granted, grant.left) == (True, "ann")
    assert table.holder_of("ann") is None
    assert table.online() == ()  # bob is reserved until confirmed
    assert held(NameTable(), ("s2", "ann")).online() == ("ann",)


def test_the_held_name_in_another_spelling_changes_only_the_spelling() -> None:
    table = held(NameTable(), ("s1", "eve"))
    grant = table.claim("s1", "s1", "EVE", by_token=False)
    assert (grant.granted, grant.left) == (True, None)
    assert table.online() == ("EVE",)


def test_a_claim_by_token_holds_the_name_with_its_holders_and_it_is_online_once() -> None:
    table = held(NameTable(), ("tab1", "zoe"))
    grant = table.claim("tab2", "tab2", "zoe", by_token=True)
    assert (grant.granted, grant.left) == (True, None)
    assert table.confirm("tab2") == (True, None)  # online already: nothing to announce
    assert table.online() == ("zoe",)
    assert table.online_count() == 1
    assert {h.session_id for h in table.holders()} == {"tab1", "tab2"}


def test_a_shared_name_goes_offline_with_its_last_holder() -> None:
    table = held(NameTable(), ("tab1", "zoe"))
    table.claim("tab2", "tab2", "zoe", by_token=True)
    table.confirm("tab2")
    assert table.release("tab1") is None  # tab2 holds it still
    assert table.online() == ("zoe",)
    assert table.release("tab2") == "zoe"
    assert table.online() == ()


def test_a_claim_by_name_alone_is_refused_while_anyone_holds_it() -> None:
    table = held(NameTable(), ("tab1", "zoe"))
    grant = table.claim("stranger", "stranger", "Zoe", by_token=False)
    assert (grant.granted, grant.taken_by) == (False, "zoe")


def test_leave_lets_the_name_go_for_every_holder_and_names_the_others() -> None:
    table = held(NameTable(), ("tab1", "zoe"), ("bob1", "bob"))
    table.claim("tab2", "tab2", "zoe", by_token=True)
    table.confirm("tab2")
    letting = table.leave("tab1")
    assert letting.left == "zoe"
    assert [h.session_id for h in letting.others] == ["tab2"]
    assert not table.holds("tab2")
    assert table.online() == ("bob",)
    assert table.claim("stranger", "stranger", "zoe", by_token=False).granted
    assert table.leave("nobody").left is None


def test_a_claim_by_token_never_takes_a_look_alike() -> None:
    table = held(NameTable(), ("s1", "paypal"))
    grant = table.claim("s2", "s2", "pаypal", by_token=True)  # noqa: RUF001
    assert not grant.granted


def test_release_says_whether_an_online_name_left() -> None:
    table = held(NameTable(), ("s1", "ann"))
    table.claim("s2", "s2", "bob", by_token=False)  # reserved only
    assert table.release("s1") == "ann"
    assert table.release("s2") is None
    assert table.release("nobody") is None
    assert table.online_count() == 0


def test_restoring_after_a_restart_never_displaces_a_confirmed_name() -> None:
    table = NameTable()
    assert table.restore("s1", "s1", "paypal", confirmed=True)
    assert not table.restore("s2", "s2", "pаypal", confirmed=True)  # noqa: RUF001
    assert table.restore("s3", "s3", "bob", confirmed=False)
    assert table.restore("s4", "s4", "b0b", confirmed=True)  # confirmed beats reserved
    assert not table.restore("s5", "s5", "bob", confirmed=False)
    assert table.online() == ("b0b", "paypal")


def test_restoring_the_same_name_from_several_sessions_holds_it_together() -> None:
    table = NameTable()
    assert table.restore("tab1", "tab1", "ann", confirmed=True)
    assert table.restore("tab2", "tab2", "ANN", confirmed=True)
    assert table.online_count() == 1
    assert table.release("tab1") is None


def test_online_names_are_sorted_case_insensitively() -> None:
    table = held(NameTable(), ("s1", "bob"), ("s2", "Ann"), ("s3", "carl"))
    assert table.online() == ("Ann", "bob", "carl")
    assert table.online_count() == 3
