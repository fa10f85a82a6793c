"""Malformed input through every command that reads user data, in process.

Each case asserts what a user must be able to rely on: exit status 2, one line (``error: ...``)
naming the source, column and row where there is one, no traceback, no new file anywhere under
the test's folder (the store's own file aside), no run left ``running`` and the source unchanged.
"""

from __future__ import annotations

import hashlib
import sqlite3
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from embeddings.data import EventSchema, build_sequences, read_events
from embeddings.errors import DataError, SeqembError
from embeddings.keys import as_key, plain_int
from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from fraud.config import AutoencoderConfig, FraudModelConfig, TransactionSchema
from fraud.model import train_fraud_model
from ui.cli import app

# Every test here runs on each store back-end (tests/store_backends.py).
pytestmark = pytest.mark.usefixtures("db_backend")

EVENT_COLUMNS = ["--entity", "user", "--item", "item", "--time", "ts"]
TRANSACTION_COLUMNS = ["--entity", "card", "--counterparty", "merchant", "--amount", "amount", "--time", "ts"]


def invoke(args: list[str]) -> tuple[int, str]:
    """Run ``seqemb ARGS`` in this process as :func:`ui.cli.main` does: (exit status, output)."""
    result = CliRunner().invoke(app, args)
    error = result.exception
    if isinstance(error, SeqembError):
        return 2, f"error: {error}\n"
    if error is not None and not isinstance(error, SystemExit):
        pytest.fail("".join(traceback.format_exception(error)))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def fraud_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    world = make_world(WorldConfig(seed=0).scaled(0.1))
    frame = world.transactions.rename({"card_id": "card", "merchant_id": "merchant"})
    schema = TransactionSchema(entity="card", counterparty="merchant")
    model = train_fraud_model(frame, schema, FraudModelConfig(AutoencoderConfig(epochs=1, device="cpu")))
    return model.save(tmp_path_factory.mktemp("fraud") / "model")


def _events(n: int = 40) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user": [f"u{i % 5}" for i in range(n)],
            "item": [f"i{i % 7}" for i in range(n)],
            "ts": [f"2024-01-01 00:{i // 60:02d}:{i % 60:02d}" for i in range(n)],
        }
    )


def _transactions(n: int = 40) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "card": [f"c{i % 4}" for i in range(n)],
            "merchant": [f"m{i % 6}" for i in range(n)],
            "amount": [float(10 + i) for i in range(n)],
            "ts": [f"2024-01-01 00:{i // 60:02d}:{i % 60:02d}" for i in range(n)],
        }
    )


@dataclass(frozen=True)
class Case:
    """One malformed input: how to write it into a folder, the arguments, and what the error says."""

    name: str
    write: Callable[[Path], Path]
    args: Callable[[Path], list[str]]
    says: Callable[[Path], str]


def _csv(frame_or_text, name: str = "data.csv") -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        if isinstance(frame_or_text, pl.DataFrame):
            frame_or_text.write_csv(path)
        elif isinstance(frame_or_text, bytes):
            path.write_bytes(frame_or_text)
        else:
            path.write_text(frame_or_text)
        return path

    return write


def _parquet(frame: pl.DataFrame, truncate: bool = False) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "data.parquet"
        frame.write_parquet(path)
        if truncate:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path

    return write


def _sqlite(frame: pl.DataFrame) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "source.sqlite"
        frame.write_database("t", f"sqlite:///{path}")
        return path

    return write


def _row(path: Path, column: str, row: int) -> str:
    return f"{path}: column {column!r} row {row} (0-based data row)"


E = _events()
T = _transactions()
LONG = "x" * 129

# (command, its column flags, a good table): each table class runs through each reading command.
READERS = {
    "item2vec": (["item2vec"], EVENT_COLUMNS, E, "user"),
    "train-recommender": (["train-recommender"], EVENT_COLUMNS, E, "user"),
    "train-fraud": (["train-fraud"], TRANSACTION_COLUMNS, T, "card"),
    "score": (["score"], [], T, "card"),  # score reads the model's columns
    "node2vec": (["node2vec", "--transactions", "--src", "card", "--dst", "merchant", "--edges"], [], T, "card"),
}


def _table_cases(command: str) -> list[Case]:
    words, columns, good, key = READERS[command]

    def args(source: Callable[[Path], str], extra: tuple[str, ...] = ()) -> Callable[[Path], list[str]]:
        def build(path: Path) -> list[str]:
            return [*words, str(source(path)), *columns, *extra]  # node2vec's words end in --edges

        return build

    plain = args(lambda p: p)
    cases = [
        Case("missing column", _csv(good.drop(key)), plain, lambda p: f"{p}: missing column {key!r}"),
        Case(
            "null key",
            _csv(good.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col(key)).alias(key))),
            plain,
            lambda p: f"{_row(p, key, 3)}: missing value",
        ),
        Case(
            "float ids",
            _parquet(good.with_columns(pl.lit(1.5).alias(key))),
            plain,
            lambda p: f"{p}: column {key!r} has type Float64",
        ),
        Case(
            "bad timestamp",
            _csv(
                good.with_columns(
                    pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("yesterday")).otherwise(pl.col("ts")).alias("ts")
                )
            ),
            plain,
            lambda p: f"{_row(p, 'ts', 5)}: cannot parse 'yesterday' as a timestamp",
        ),
        Case("empty file", _csv(""), plain, lambda p: f"{p}: no rows"),
        Case("header only", _csv(",".join(good.columns) + "\n"), plain, lambda p: f"{p}: no rows"),
        Case("binary garbage", _csv(bytes(range(256)) * 8), plain, lambda p: f"{p}:"),
        Case("truncated parquet", _parquet(good, truncate=True), plain, lambda p: f"{p}: cannot read file"),
        Case("wrong delimiter", _csv(good.write_csv(separator=";")), plain, lambda p: f"{p}: missing column"),
        Case(
            "id too long",
            _parquet(
                good.with_columns(
                    pl.when(pl.int_range(pl.len()) == 2).then(pl.lit(LONG)).otherwise(pl.col(key)).alias(key)
                )
            ),
            plain,
            lambda p: f"{_row(p, key, 2)}: id is 129 characters long; ids have at most 128",
        ),
        Case(
            "NUL in an id",
            _parquet(
                good.with_columns(
                    pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("a\x00b")).otherwise(pl.col(key)).alias(key)
                )
            ),
            plain,
            lambda p: f"{_row(p, key, 4)}: id holds a NUL",
        ),
        Case(
            "newline in an id",
            _csv(
                good.with_columns(
                    pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("a\nb")).otherwise(pl.col(key)).alias(key)
                )
            ),
            plain,
            lambda p: f"{_row(p, key, 1)}: id holds a NUL, newline",
        ),
        Case("unknown file type", _csv("a,b\n", name="data.txt"), plain, lambda p: f"{p}: unknown file type"),
        Case(
            "DROP TABLE",
            _sqlite(good),
            args(lambda p: f"sqlite:///{p}", ("--query", "DROP TABLE t")),
            lambda p: "query: a query source is read only",
        ),
        Case(
            "DELETE RETURNING",
            _sqlite(good),
            args(lambda p: f"sqlite:///{p}", ("--query", "DELETE FROM t RETURNING *")),
            lambda p: "query: a query source is read only",
        ),
        Case(
            "two statements",
            _sqlite(good),
            args(lambda p: f"sqlite:///{p}", ("--query", "SELECT * FROM t; DELETE FROM t")),
            lambda p: "query: give one SELECT statement, got 2 statements",
        ),
        Case(
            "no such table",
            _sqlite(good),
            args(lambda p: f"sqlite:///{p}", ("--table", "nope")),
            lambda p: "table 'nope': no such table",
        ),
        Case(
            "bad SQL",
            _sqlite(good),
            args(lambda p: f"sqlite:///{p}", ("--query", "SELECT * FROM nope")),
            lambda p: "query: (sqlite3.OperationalError) no such table: nope",
        ),
        Case(
            "missing database file",
            lambda folder: folder / "absent.sqlite",
            args(lambda p: f"sqlite:///{p}", ("--table", "t")),
            lambda p: "database file not found",
        ),
    ]
    if command == "node2vec":  # reads the card and merchant columns only
        cases = [case for case in cases if case.name != "bad timestamp"]
    if "amount" in good.columns and command != "node2vec":
        for bad, shown in ((float("nan"), "nan"), (float("inf"), "inf"), (-1.0, "-1.0")):
            frame = good.with_columns(
                pl.when(pl.int_range(pl.len()) == 6).then(pl.lit(bad)).otherwise(pl.col("amount")).alias("amount")
            )
            cases.append(
                Case(
                    f"amount {shown}",
                    _parquet(frame),
                    plain,
                    lambda p, s=shown: f"{_row(p, 'amount', 6)}: amount {s} is not a finite number >= 0",
                )
            )
    return cases


def _flag_cases() -> list[Case]:
    good = _csv(E)

    def item2vec(*extra: str) -> Callable[[Path], list[str]]:
        return lambda p: ["item2vec", str(p), *EVENT_COLUMNS, *extra]

    return [
        Case("session gap nan", good, item2vec("--session-gap", "nan"), lambda p: "session_gap_minutes must be"),
        Case("session gap inf", good, item2vec("--session-gap", "inf"), lambda p: "session_gap_minutes must be"),
        Case("session gap negative", good, item2vec("--session-gap", "-5"), lambda p: "session_gap_minutes must be"),
        Case(
            "huge dim",
            good,
            item2vec("--dim", "2000000000"),
            lambda p: "the SGNS matrices (2 x 8 x dim 2000000000 float32) need 119.2 GiB",
        ),
        Case("out is a file", good, item2vec("--out", "{folder}/data.csv"), lambda p: f"{p}: is a file"),
        Case(
            "out under a file", good, item2vec("--out", "{folder}/data.csv/model"), lambda p: "cannot create its folder"
        ),
        Case(
            "integer ids that are not",
            good,
            item2vec("--integer-ids"),
            lambda p: f"{_row(p, 'user', 0)}: 'u0' is not an integer id",
        ),
    ]


CASES = [
    pytest.param(command, case, id=f"{command}: {case.name}") for command in READERS for case in _table_cases(command)
]
CASES += [pytest.param("item2vec", case, id=f"item2vec: {case.name}") for case in _flag_cases()]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (the store's own files aside) and a digest of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
        if "seqemb.sqlite" not in p.name
    }


@pytest.mark.parametrize(("command", "case"), CASES)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    command: str, case: Case, tmp_path: Path, seqemb_home: Path, fraud_model: Path
) -> None:
    source = case.write(tmp_path)
    args = [a.replace("{folder}", str(tmp_path)) for a in case.args(source)]
    if command == "score":
        args += ["--model", str(fraud_model)]
    Store()  # the store exists before, so only what the command writes is new
    seqemb_home.mkdir(exist_ok=True)  # as a SQLite store's folder does
    before = _snapshot(tmp_path)
    table_before = _sqlite_rows(source)

    code, output = invoke(args)

    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].isprintable(), output
    assert case.says(source) in lines[0], lines[0]
    assert _snapshot(tmp_path) == before  # no model, no temp file, the source unchanged
    assert _sqlite_rows(source) == table_before
    assert Store().runs(status="running") == []


def _sqlite_rows(path: Path) -> list | None:
    if path.suffix != ".sqlite" or not path.is_file():
        return None
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM t ORDER BY rowid").fetchall()


# -- properties ------------------------------------------------------------------------------

ids = st.one_of(st.integers(min_value=-(2**62), max_value=2**62), st.text(min_size=0, max_size=140))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ids, ids), min_size=0, max_size=30))
def test_any_frame_of_ids_builds_sequences_or_fails_with_one_line(rows: list[tuple]) -> None:
    frame = pl.DataFrame({"user": [r[0] for r in rows], "item": [r[1] for r in rows]}, strict=False)
    try:
        events, report = read_events(frame, EventSchema("user", "item"))
    except DataError as error:
        assert "\n" not in str(error) and str(error).startswith("dataframe")
        return
    built = build_sequences(events, min_length=1)
    assert built.report.rows_read == report.rows == len(rows)
    assert built.sequences.n_tokens + sum(built.report.rows_dropped.values()) == len(rows)
    assert len(built.vocab) == events["item"].n_unique() + 1  # and the padding token


@given(st.text(max_size=30))
def test_a_typed_key_is_its_integer_exactly_when_it_is_plain_decimal_text(text: str) -> None:
    number = plain_int(text)
    stripped = text.strip()
    if number is None:
        assert as_key(text, integer_keys=True) == text
    else:
        assert str(number) == stripped.lstrip("+") or int(stripped) == number
        assert as_key(text, integer_keys=True) == number
    assert as_key(text, integer_keys=False) == text
