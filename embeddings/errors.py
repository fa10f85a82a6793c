"""Errors a user can cause and fix.

Every problem that comes from input (a file, a column, a flag, a URL) raises a
:class:`SeqembError` whose message is one line that says what is wrong and where:
the source, the column and the first bad row when there is one. The CLI prints
that line and exits non-zero without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class SeqembError(Exception):
    """Base class for errors caused by input the user controls."""


class DataError(SeqembError):
    """An input table is missing, malformed or empty."""


class RowError(DataError):
    """A bad value in one row: ``source``, ``column``, ``row`` (0-based data row) and ``problem``
    are kept, so a reader of one block of a source can name the row in the whole source."""

    def __init__(self, source: str, column: str, row: int, problem: str) -> None:
        self.source, self.column, self.row, self.problem = source, column, row, problem
        super().__init__(f"{source}: column {column!r} row {row} (0-based data row): {problem}")

    def at(self, source: str, row: int) -> RowError:
        """The same error named in ``source`` at its ``row``."""
        return RowError(source, self.column, row, self.problem)


def missing_column(source: str, column: str, columns: Iterable[str]) -> DataError:
    """The error for ``source`` having no column ``column``: it lists the columns it has (printable, at
    most :data:`LISTED_COLUMNS`), so a file read with the wrong delimiter or a binary file still gives one line."""
    names = [printable(c) for c in columns]
    listed = ", ".join(names[:LISTED_COLUMNS]) + (", ..." if len(names) > LISTED_COLUMNS else "")
    return DataError(f"{source}: missing column {column!r} (columns: {listed})")


LISTED_COLUMNS = 20


def printable(text: str) -> str:
    """``text`` with each unprintable character (a NUL, a newline) written as its escape, for messages
    that must stay one line and that a database text field can store."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class ConfigError(SeqembError):
    """A configuration value or command-line flag is invalid."""


class NotFoundError(SeqembError):
    """A key, model directory or run the user asked for does not exist."""


def first_line(error: BaseException | None) -> str:
    """The first line of a library's error message (its type name if it has none), for our one-liners."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# Extras of seqemb that bring a database driver, by SQLAlchemy backend name.
_DRIVER_EXTRAS = {"postgresql": "postgres"}


def missing_driver(backend: str, error: BaseException) -> str:
    """What to say when the driver of a ``backend`` URL is not installed: the extra that brings it."""
    extra = _DRIVER_EXTRAS.get(backend)
    hint = f"pip install 'seqemb[{extra}]'" if extra else "install its driver"
    return f"the {backend} driver is not installed ({first_line(error)}); {hint}"


class BusyError(SeqembError):
    """The same job (or the run to resume) is already running in a live process."""
