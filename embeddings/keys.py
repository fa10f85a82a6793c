"""Keys typed by a person (a command line, a URL, a text box) as the key type of a table.

Vector tables, vocabularies and recommenders key their rows by ``str`` or by ``int``. A person
types text; ``"42"`` must find the integer key 42, and anything that is not the plain decimal
text of an integer (``"²"``, ``"--5"``, ``"4 2"``) stays text, so a lookup of it simply finds
nothing instead of failing.
"""

from __future__ import annotations

import re
from typing import Any

# Longest id (text) the store keeps; ids are checked against it when a table or a typed id is read.
ID_LENGTH = 128
# Characters no id may hold: they break CSV rows, log lines and C strings.
FORBIDDEN_ID_CHARACTERS = "\x00\n\r"
FORBIDDEN_ID_PATTERN = "[\x00\n\r]"

# Plain ASCII decimal integers that fit in int64 (str.isdigit would accept "²", which int() refuses).
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def id_problem(text: str) -> str | None:
    """Why ``text`` cannot be an id (too long, a forbidden character), or None when it can."""
    if len(text) > ID_LENGTH:
        return too_long(len(text))
    if any(c in text for c in FORBIDDEN_ID_CHARACTERS):
        return FORBIDDEN_MESSAGE
    return None


def too_long(length: int) -> str:
    return f"id is {length} characters long; ids have at most {ID_LENGTH}"


FORBIDDEN_MESSAGE = "id holds a NUL, newline or carriage-return character"


def plain_int(text: str) -> int | None:
    """The integer whose plain ASCII decimal text ``text`` is (an optional ``-``, then digits), else None."""
    stripped = text.strip()
    return int(stripped) if _INTEGER.fullmatch(stripped) else None


def as_key(value: Any, integer_keys: bool) -> Any:
    """``value`` as a key of a table whose keys are integers (``integer_keys``) or text.

    Text of a plain decimal integer becomes that integer for an integer table; any other value
    becomes its text for a text table; everything else is returned as it is.
    """
    if integer_keys and isinstance(value, str):
        number = plain_int(value)
        return value if number is None else number
    if not integer_keys and not isinstance(value, str):
        return str(value)
    return value
