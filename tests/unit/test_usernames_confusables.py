"""Look-alike names (UTS #39 skeletons) and the invisible characters a name may not hold."""

# These tests spell look-alike letters on purpose:
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatter.errors import InvalidUsername
from chatter.usernames import (
    confusable_key,
    confusable_keys,
    names_collide,
    skeleton,
    username_key,
    validate_username,
)

_NAME_CHARS = st.characters(categories=("Lu", "Ll", "Lt", "Lm", "Lo", "Nd"))
_NAMES = st.text(_NAME_CHARS, min_size=1, max_size=12)


def _valid(name: str) -> bool:
    try:
        validate_username(name)
    except InvalidUsername:
        return False
    return True


# -- the skeleton -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("look_alike", "original"),
    [
        ("раураl", "paypal"),  # Cyrillic р, а, у
        ("Ꭺlice", "Alice"),  # Cherokee Ꭺ
        ("rn", "m"),
        ("ѕсоре", "scope"),  # all Cyrillic
        ("𝐚𝐥𝐢𝐜𝐞", "alice"),  # mathematical bold
    ],
)
def test_look_alikes_have_the_same_skeleton(look_alike: str, original: str) -> None:
    assert look_alike != original
    assert skeleton(look_alike) == skeleton(original)


@pytest.mark.parametrize(("one", "other"), [("alice", "alicia"), ("bob", "rob"), ("1", "2")])
def test_names_that_look_different_have_different_skeletons(one: str, other: str) -> None:
    assert skeleton(one) != skeleton(other)


def test_the_skeleton_is_case_sensitive_as_uts39_defines_it() -> None:
    assert skeleton("Alice") != skeleton("alice")


def test_the_skeleton_ignores_invisible_characters() -> None:
    assert skeleton("ali\u200bce") == skeleton("alice")
    assert skeleton("\u00adbob\ufeff") == skeleton("bob")


def test_the_skeleton_is_in_nfd() -> None:
    assert skeleton("é") == unicodedata.normalize("NFD", skeleton("é"))


@given(st.text())
def test_the_skeleton_of_any_text_is_its_own_skeleton(text: str) -> None:
    assert skeleton(skeleton(text)) == skeleton(text)


# -- confusable keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("look_alike", "original"),
    [
        ("раураl", "paypal"),
        ("РАУРАL", "paypal"),
        ("PayPal", "paypal"),
        ("Ꭺlice", "alice"),
        ("rn", "M"),
        ("g00gle", "google"),
        ("ＡＬＩＣＥ", "alice"),  # full-width
        ("ᎪDMIN", "admin"),
    ],
)
def test_confusable_key_ignores_case_as_well_as_look(look_alike: str, original: str) -> None:
    assert confusable_key(look_alike) == confusable_key(original)
    assert names_collide(look_alike, original)


@pytest.mark.parametrize(
    ("look_alike", "original"),
    [
        ("АDМІN", "ADMIN"),  # Cyrillic А, М, І: their small letters look different
        ("ΗΕLLΟ", "hello"),  # Greek capitals
        ("Ι", "l"),  # Greek capital iota
    ],
)
def test_look_alikes_in_capitals_collide_through_the_key_as_written(
    look_alike: str, original: str
) -> None:
    assert confusable_key(look_alike) != confusable_key(original)
    assert names_collide(look_alike, original)
    assert names_collide(original, look_alike)


@pytest.mark.parametrize(
    ("one", "other"), [("alice", "alicia"), ("bob", "bobby"), ("Zoë", "Zoe"), ("李小龙", "李小虎")]
)
def test_different_names_do_not_collide(one: str, other: str) -> None:
    assert not names_collide(one, other)


def test_confusable_keys_hold_the_folded_key() -> None:
    assert confusable_key("Alice") in confusable_keys("Alice")
    assert 1 <= len(confusable_keys("Alice")) <= 2


@given(_NAMES)
def test_names_with_the_same_username_key_always_collide(name: str) -> None:
    for variant in (name.upper(), name.lower(), name.casefold(), name.title()):
        if username_key(variant) == username_key(name):
            assert confusable_key(variant) == confusable_key(name)
            assert names_collide(variant, name)


@given(_NAMES)
def test_a_name_collides_with_its_own_skeleton(name: str) -> None:
    # The skeleton spells the name in prototypes: whatever looks like it.
    assert names_collide(name, skeleton(name))


@given(_NAMES)
def test_the_confusable_key_of_a_key_is_itself(name: str) -> None:
    key = confusable_key(name)
    assert confusable_key(key) == key


def test_every_single_character_name_has_a_stable_confusable_key() -> None:
    # Exhaustive over one-character names: some prototypes are capitals, so one
    # round of folding is not always enough (ꮥ folds to Ꮥ, whose prototype is S).
    unstable = []
    for point in range(0x110000):
        char = chr(point)
        if unicodedata.category(char) in {"Lu", "Ll", "Lt", "Lm", "Lo", "Nd"}:
            key = confusable_key(char)
            if confusable_key(key) != key:
                unstable.append(f"U+{point:04X}")
    assert unstable == []


@given(_NAMES, _NAMES)
def test_collision_is_symmetric(one: str, other: str) -> None:
    assert names_collide(one, other) == names_collide(other, one)


# -- invisible, control and bidi characters -------------------------------------------------


@pytest.mark.parametrize(
    "char",
    [
        "\u202e",  # RIGHT-TO-LEFT OVERRIDE
        "\u202a",  # LEFT-TO-RIGHT EMBEDDING
        "\u2066",  # LEFT-TO-RIGHT ISOLATE
        "\u2069",  # POP DIRECTIONAL ISOLATE
        "\u200e",  # LEFT-TO-RIGHT MARK
        "\u061c",  # ARABIC LETTER MARK
        "\u200b",  # ZERO WIDTH SPACE
        "\u200c",  # ZERO WIDTH NON-JOINER
        "\u200d",  # ZERO WIDTH JOINER
        "\u2060",  # WORD JOINER
        "\ufeff",  # ZERO WIDTH NO-BREAK SPACE (byte order mark)
        "\u00ad",  # SOFT HYPHEN
        "\u034f",  # COMBINING GRAPHEME JOINER: a mark by category
        "\ufe0f",  # VARIATION SELECTOR-16: a mark by category
        "\U000e0101",  # VARIATION SELECTOR-18
        "\u3164",  # HANGUL FILLER: a letter by category, blank on screen
        "\uffa0",  # HALFWIDTH HANGUL FILLER
        "\u115f",  # HANGUL CHOSEONG FILLER
        "\u17b4",  # KHMER VOWEL INHERENT AQ
        "\U000e0041",  # TAG LATIN CAPITAL LETTER A
    ],
)
def test_invisible_and_bidi_characters_are_refused_as_invisible(char: str) -> None:
    for name in (f"ab{char}cd", f"{char}abc", f"abc{char}"):
        with pytest.raises(InvalidUsername, match="invisible or text-direction"):
            validate_username(name)


@pytest.mark.parametrize("char", ["\x00", "\t", "\n", "\x1b", "\x7f", "\x85", "\u009b"])
def test_control_characters_are_refused_and_named(char: str) -> None:
    with pytest.raises(InvalidUsername, match=rf"U\+{ord(char):04X}"):
        validate_username(f"ab{char}cd")


@given(st.text(st.characters(categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cs"))))
def test_no_control_format_or_space_character_is_ever_accepted(text: str) -> None:
    with pytest.raises(InvalidUsername):
        validate_username(f"a{text}b" if text else "a b")


@given(st.text(min_size=1))
def test_an_accepted_name_holds_letters_marks_digits_and_three_punctuation_marks(
    text: str,
) -> None:
    if _valid(text):
        categories = {unicodedata.category(c) for c in validate_username(text)}
        assert categories <= {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Nd", "Pc", "Pd", "Po"}


@pytest.mark.parametrize("name", ["Zoë", "नमस्ते", "محمد", "a.b-c_d", "ʻOkina"])
def test_names_that_need_marks_or_punctuation_stay_valid(name: str) -> None:
    assert validate_username(name) == unicodedata.normalize("NFKC", name)
