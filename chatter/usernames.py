"""Usernames: which names are valid, and when two names are the same name.

A name is 1 to 32 characters after Unicode NFKC normalisation, made of letters
and digits of any script plus ``_``, ``-`` and ``.``. Invisible characters are
refused even where their category would pass: Unicode's
Default_Ignorable_Code_Point set holds the zero-width space and joiners, the
bidi overrides and isolates, the soft hyphen, variation selectors and the
Hangul fillers (letters by category, blank on screen).

Names compare in two ways:

`username_key`
    Is it the same name? NFKC, case-folded, NFKC again (Unicode's
    NFKC_Casefold in spirit), so ``Alice``, ``ALICE`` and ``Alice`` in
    full-width letters are one name. Users are stored under it.
`confusable_keys`
    Does it look like the same name? Each key is a UTS #39 `skeleton`, made
    case-insensitive by folding and skeletonising again: one of the name as
    written, one of its username_key (that one is `confusable_key`). So
    ``раураl`` in Cyrillic letters looks like ``paypal``, ``АDМІN`` in
    Cyrillic like ``ADMIN``, and ``rn`` like ``m``.

A name is taken by an online name when they share a confusable key
(`names_collide`); names with equal username_keys always do. Two keys, because
no single one can be both: folding Greek ``Β`` (which looks like ``B``) gives
``β`` (which looks like ``ß``), so whether case or look is compared first,
some look-alikes are lost; the key as written keeps the capitals' look, the
folded one the small letters'. Look-alike is not transitive (``I`` looks like
``l``, ``i`` does not), which is why this is a check against online names
and not a unique key in the database.

The confusable data is Unicode's own ``confusables.txt`` (UTS #39 version
18.0.0), shipped verbatim in ``chatter/data/`` and read once, on first use.
Python's ``unicodedata`` may be older than that file (Unicode 14 on Python
3.11): characters it does not know are unassigned to it, and refused as names.
"""

# The docs show look-alike letters on purpose:
# ruff: noqa: RUF002, RUF003

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

from chatter.errors import InvalidUsername

__all__ = [
    "MAX_USERNAME_CHARS",
    "confusable_key",
    "confusable_keys",
    "names_collide",
    "skeleton",
    "username_key",
    "validate_username",
]

MAX_USERNAME_CHARS = 32
_PUNCTUATION = frozenset("_-.")
# Letters (L*), combining marks that letters need in many scripts (M*), digits (Nd).
_ALLOWED_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Nd"})
# Default_Ignorable_Code_Point, from the UCD's DerivedCoreProperties.txt (unchanged
# since Unicode 14; ``unicodedata`` does not expose it): inclusive code point ranges.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_CONFUSABLES_FILE = Path(__file__).parent / "data" / "confusables.txt"
# Skeleton, then this many rounds of (case-fold, skeleton): enough for the key of a
# key to be itself (a fold can give an upper-case prototype, ``ꮥ`` → ``Ꮥ`` → ``S``).
_FOLD_ROUNDS = 2


def validate_username(name: object) -> str:
    """The name, NFKC-normalised; raises `InvalidUsername` saying what is wrong."""
    if not isinstance(name, str):
        raise InvalidUsername("the username must be a string")
    normal = unicodedata.normalize("NFKC", name)
    if not normal:
        raise InvalidUsername("the username is empty")
    if len(normal) > MAX_USERNAME_CHARS:
        raise InvalidUsername(f"the username is longer than {MAX_USERNAME_CHARS} characters")
    for char in normal:
        if char in _PUNCTUATION:
            continue
        if _is_invisible(char):
            raise InvalidUsername(
                f"the username may not hold invisible or text-direction characters, "
                f"not {_describe(char)}"
            )
        if unicodedata.category(char) not in _ALLOWED_CATEGORIES:
            raise InvalidUsername(
                f"the username may hold letters, digits, '_', '-' and '.' only, "
                f"not {_describe(char)}"
            )
    if unicodedata.category(normal[0]) in ("Mn", "Mc"):
        raise InvalidUsername("the username cannot start with a combining mark")
    return normal


def username_key(name: str) -> str:
    """The form two names are compared in: equal keys are the same name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def skeleton(name: str) -> str:
    """The UTS #39 skeleton: equal skeletons look alike (case-sensitively).

    NFD; drop Default_Ignorable_Code_Point characters; replace each character
    by its prototype from ``confusables.txt``; NFD again (UTS #39 section 4).
    The result is for comparing, never for showing: ``m`` becomes ``rn``.
    """
    table = _prototypes()
    decomposed = unicodedata.normalize("NFD", name)
    mapped = "".join(table.get(char, char) for char in decomposed if not _is_invisible(char))
    return unicodedata.normalize("NFD", mapped)


def confusable_key(name: str) -> str:
    """The look of the name in folded case: names with equal keys look alike.

    The `skeleton` of the `username_key`, then case-folded and skeletonised
    again (twice, which makes it stable), as some prototypes are capitals
    (``0`` → ``O``):
    ``раураl`` (Cyrillic), ``PayPal`` and ``paypal`` share a key, and so do
    ``Ꭺlice`` (Cherokee ``Ꭺ``) and ``alice``, ``rn`` and ``m``, ``g00gle``
    and ``google``. Names with equal `username_key` have equal keys. It misses
    what only capitals show (Greek ``ΗΕLLΟ`` folds to ``ηεllο``, unlike
    ``hello``): `confusable_keys` also holds the look as written.
    """
    return _look(username_key(name))


def confusable_keys(name: str) -> frozenset[str]:
    """The name's looks, as written and in folded case: a shared key means taken.

    Holds `confusable_key` and the same key made from the name as written, so
    that look-alikes in capitals (``АDМІN`` in Cyrillic and ``ADMIN``) share a
    key too. A holder of online names indexes each under all of its keys.
    """
    return frozenset({_look(name), confusable_key(name)})


def names_collide(name: str, other: str) -> bool:
    """Whether ``name`` is taken while ``other`` is online: the same name or a look-alike."""
    return not confusable_keys(name).isdisjoint(confusable_keys(other))


def _look(text: str) -> str:
    key = skeleton(text)
    for _ in range(_FOLD_ROUNDS):
        key = skeleton(username_key(key))
    return key


def _is_invisible(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in _INVISIBLE_RANGES)


@functools.cache
def _prototypes() -> dict[str, str]:
    """confusables.txt as {source character: prototype string}, read on first use."""
    table: dict[str, str] = {}
    # A line: "0440 ;\t0070 ;\tMA\t# ( р → p ) CYRILLIC SMALL LETTER ER → LATIN SMALL ...".
    for line in _CONFUSABLES_FILE.read_text(encoding="utf-8-sig").splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 2:
            continue
        source, target = (_from_hex(field) for field in fields[:2])
        table[source] = target
    return table


def _from_hex(code_points: str) -> str:
    return "".join(chr(int(point, 16)) for point in code_points.split())


def _describe(char: str) -> str:
    if char.isprintable() and not char.isspace() and not _is_invisible(char):
        return f"{char!r}"
    name = unicodedata.name(char, "")
    if not name and unicodedata.category(char) == "Cc":
        name = "a control character"
    return f"U+{ord(char):04X} ({name or 'unnamed'})"
