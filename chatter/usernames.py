"""Usernames: which names are valid, and when two names are the same name.

A name is 1 to 32 characters after Unicode NFKC normalisation, made of letters
and digits of any script plus ``_``, ``-`` and ``.``. Names compare by their
key: NFKC, case-folded, NFKC again (Unicode's NFKC_Casefold in spirit), so
``Alice``, ``ALICE`` and ``Alice`` in full-width letters are one name.
"""

from __future__ import annotations

import unicodedata

from chatter.errors import InvalidUsername

__all__ = ["MAX_USERNAME_CHARS", "username_key", "validate_username"]

MAX_USERNAME_CHARS = 32
_PUNCTUATION = frozenset("_-.")
# Letters (L*), combining marks that letters need in many scripts (M*), digits (Nd).
_ALLOWED_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Nd"})


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


def _describe(char: str) -> str:
    if char.isprintable() and not char.isspace():
        return f"{char!r}"
    return f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')})"
