"""One-line errors stay one printable line whatever the input's bytes."""

from __future__ import annotations

from embeddings.errors import LISTED_COLUMNS, missing_column, printable


def test_a_binary_header_is_listed_escaped_on_one_printable_line() -> None:
    columns = ["id", "a\x00b", "tab\there", "new\nline", "café"]
    message = str(missing_column("data.csv", "user", columns))
    assert message == r"data.csv: missing column 'user' (columns: id, a\x00b, tab\there, new\nline, café)"
    assert message.isprintable()
    assert printable("plain text, ünïcode") == "plain text, ünïcode"


def test_a_wide_table_lists_its_first_columns_only() -> None:
    columns = [f"c{i}" for i in range(LISTED_COLUMNS + 5)]
    message = str(missing_column("t", "user", columns))
    assert message.endswith(f"c{LISTED_COLUMNS - 1}, ...)")
    assert f"c{LISTED_COLUMNS}," not in message
